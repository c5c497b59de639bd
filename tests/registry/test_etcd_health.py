"""EtcdRegistry.ping needs the leader; its errors tell "no member reachable" from "no quorum"."""

from __future__ import annotations

import time

import pytest

from mao.errors import RegistryUnavailable
from mao.registry.etcd import EtcdRegistry, make_clients


@pytest.mark.etcd
def test_ping_on_a_healthy_cluster_reports_its_leader(etcd_registry: EtcdRegistry) -> None:
    facts = etcd_registry.ping()
    assert facts["backend"] == "etcd" and facts["version"] and int(facts["leader"]) > 0


@pytest.mark.etcd
def test_ping_passes_a_dead_endpoint_and_uses_a_live_one(etcd_cluster, etcd_prefix, free_port) -> None:
    reg = EtcdRegistry(
        make_clients([f"http://127.0.0.1:{free_port()}", etcd_cluster.endpoints[0]], timeout=3), etcd_prefix
    )
    try:
        assert reg.ping()["version"]
    finally:
        reg.close()


def test_no_member_reachable_is_said_so(free_port) -> None:
    endpoints = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    reg = EtcdRegistry(make_clients(endpoints, timeout=2), "/mao/")
    started = time.monotonic()
    for call in (reg.ping, lambda: reg.get("tools/x")):
        with pytest.raises(RegistryUnavailable) as info:
            call()
        assert info.value.message.startswith("no etcd member is reachable at ")
        assert info.value.details["reason"] == "unreachable" and info.value.details["reachable"] == []
    assert time.monotonic() - started < 5
    reg.close()
