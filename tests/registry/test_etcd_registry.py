"""EtcdRegistry against a real 3-member cluster: key layout, member failover, unreachable cluster."""

from __future__ import annotations

import json
import time

import pytest
from waiting import wait_for

from mao.catalog import Catalog
from mao.config import Settings
from mao.errors import InvalidInput, RegistryUnavailable
from mao.models import DatasetIn, ToolIn
from mao.registry import make_registry
from mao.registry.etcd import EtcdRegistry, make_clients


def raw_client(endpoint: str):
    return make_clients([endpoint], timeout=5)[0]


def _raw_items(endpoint: str, prefix: str) -> dict[str, bytes]:
    client = raw_client(endpoint)
    try:
        items = client.get_prefix(prefix)
    finally:
        client.session.close()
    out = {}
    for value, meta in items:
        key = meta["key"]
        out[key.decode() if isinstance(key, bytes) else key] = value
    return out


@pytest.mark.etcd
def test_keys_live_under_the_prefix_and_values_are_json_objects(etcd_cluster, etcd_registry: EtcdRegistry) -> None:
    prefix = etcd_registry.prefix
    catalog = Catalog(etcd_registry)
    catalog.add_tool(ToolIn(name="collector", image="mao/collector:1.0", author="me"))
    catalog.add_dataset(DatasetIn(name="hub-data", body={"master": "https://git.example.org/hub.git", "nodes": []}))
    catalog.add_node("hub-data", "collect-node1")
    etcd_registry.put_with_ttl("instances/node1", {"url": "http://127.0.0.1:8080"}, ttl=30)

    raw = _raw_items(etcd_cluster.endpoints[1], prefix)
    assert set(raw) == {prefix + "tools/collector", prefix + "datasets/hub-data", prefix + "instances/node1"}
    for key, value in raw.items():
        assert key.startswith(prefix)
        decoded = json.loads(value)
        assert isinstance(decoded, dict), key
    assert json.loads(raw[prefix + "datasets/hub-data"]) == {
        "master": "https://git.example.org/hub.git",
        "nodes": ["collect-node1"],
        "policy": "merge",
        "vote_deadline": 600,
    }
    assert json.loads(raw[prefix + "tools/collector"])["image"] == "mao/collector:1.0"
    # nothing was written outside the prefix by these calls
    assert _raw_items(etcd_cluster.endpoints[0], prefix.rstrip("/")) == raw


@pytest.mark.etcd
def test_factory_uses_the_configured_endpoints_and_prefix(etcd_cluster, etcd_prefix, tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        registry_backend="etcd",
        etcd_endpoints=",".join(etcd_cluster.endpoints),
        registry_prefix=etcd_prefix.strip("/"),
    )
    reg = make_registry(settings, store=None)  # type: ignore[arg-type] - etcd needs no store
    try:
        assert isinstance(reg, EtcdRegistry)
        assert reg.endpoints == etcd_cluster.endpoints
        reg.put("tools/x", {"v": 1})
        assert set(_raw_items(etcd_cluster.endpoints[2], etcd_prefix)) == {etcd_prefix + "tools/x"}
        assert reg.ping()["version"]
    finally:
        reg.delete("tools/x")
        reg.close()


@pytest.mark.etcd
def test_value_written_by_another_client_that_is_not_json(etcd_cluster, etcd_registry: EtcdRegistry) -> None:
    client = raw_client(etcd_cluster.endpoints[0])
    try:
        client.put(etcd_registry.prefix + "raw/legacy", "plain text")
    finally:
        client.session.close()
    assert etcd_registry.get("raw/legacy") == {"value": "plain text"}


@pytest.mark.etcd
@pytest.mark.slow
def test_keeps_working_while_a_member_is_down(etcd_cluster, etcd_prefix: str) -> None:
    """SIGTERM the leader, which is also the member the client talks to first."""
    leader = etcd_cluster.leader_index()
    order = [leader] + [i for i in range(3) if i != leader]
    reg = EtcdRegistry(make_clients([etcd_cluster.endpoints[i] for i in order], timeout=5), etcd_prefix)
    held = reg.lock("held-across-stop", ttl=5, owner="holder")
    try:
        reg.put("tools/before", {"v": 1})
        assert held.acquire(timeout=2)

        etcd_cluster.stop_member(leader)
        try:
            assert not etcd_cluster.members[leader].running
            reg.put("tools/during", {"v": 2})
            assert reg.get("tools/before") == {"v": 1}
            assert reg.get("tools/during") == {"v": 2}
            assert reg.list("tools/") == {"before": {"v": 1}, "during": {"v": 2}}
            assert reg.create("tools/during", {"v": 3}) is False
            assert reg.delete("tools/before") is True

            other = reg.lock("held-across-stop", ttl=5, owner="other")
            assert other.acquire(timeout=0.3) is False
            with reg.lock("taken-during-stop", ttl=5, owner="someone"):
                assert reg.get("locks/taken-during-stop")["owner"] == "someone"
            assert reg.get("locks/taken-during-stop") is None
            lease = reg.put_with_ttl("instances/me", {"url": "x"}, ttl=10)
            assert reg.refresh(lease) is True
            assert reg._current != 0  # calls moved on from the stopped member
        finally:
            etcd_cluster.start_member(leader, state="existing")
            etcd_cluster.wait_healthy()

        # the restarted member caught up with what was written while it was down
        wait_for(
            lambda: (
                set(_raw_items(etcd_cluster.endpoints[leader], etcd_prefix))
                >= {etcd_prefix + "tools/during", etcd_prefix + "instances/me"}
            ),
            timeout=10,
            message="the restarted member to catch up",
        )
        assert reg.get("locks/held-across-stop")["token"] == held.token
    finally:
        held.release()
        reg.close()
    assert reg.get("locks/held-across-stop") is None


def test_all_endpoints_unreachable_names_them(free_port) -> None:
    endpoints = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    reg = EtcdRegistry(make_clients(endpoints, timeout=2), "/mao/")
    started = time.monotonic()
    for call in (lambda: reg.get("tools/x"), lambda: reg.put("tools/x", {}), lambda: reg.list("tools/"), reg.ping):
        with pytest.raises(RegistryUnavailable) as info:
            call()
        for endpoint in endpoints:
            assert endpoint in info.value.message
        assert info.value.details["endpoints"] == endpoints
        assert info.value.status_code == 503
    with pytest.raises(RegistryUnavailable):
        reg.lock("x", ttl=5).acquire(timeout=0)
    assert time.monotonic() - started < 10
    reg.close()


@pytest.mark.parametrize("endpoint", ["127.0.0.1:2379", "http://127.0.0.1", "http:///x:1"])
def test_make_clients_rejects_endpoints_without_host_and_port(endpoint: str) -> None:
    with pytest.raises(InvalidInput):
        make_clients([endpoint], timeout=1)


def test_etcd_registry_needs_an_endpoint() -> None:
    with pytest.raises(InvalidInput):
        EtcdRegistry([])
