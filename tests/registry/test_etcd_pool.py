"""Concurrent registry reads against a real etcd keep their HTTP connections: the client's
pool is sized to the server's concurrency, so urllib3 never discards a connection."""

from __future__ import annotations

import logging
import threading

import pytest

from mao.config import Settings
from mao.registry import make_registry
from mao.registry.etcd import POOL_SIZE, EtcdRegistry, make_clients

THREADS = 48
READS = 15
FULL = "Connection pool is full"


def _hammer(registry: EtcdRegistry) -> list[BaseException]:
    registry.put("tools/hot", {"image": "mao/hot:1"})
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            barrier.wait(10)
            for _ in range(READS):
                assert registry.get("tools/hot") == {"image": "mao/hot:1"}
                registry.list("tools/")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def _discarded(caplog: pytest.LogCaptureFixture) -> int:
    return sum(FULL in record.getMessage() for record in caplog.records)


@pytest.mark.etcd
def test_concurrent_reads_discard_no_connection(etcd_cluster, etcd_prefix, caplog) -> None:
    etcd_cluster.wait_healthy()
    settings = Settings(registry_backend="etcd", etcd_endpoints=etcd_cluster.endpoints, registry_prefix=etcd_prefix)
    registry = make_registry(settings, store=None)  # type: ignore[arg-type] - etcd needs no store
    assert isinstance(registry, EtcdRegistry) and POOL_SIZE >= THREADS
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    try:
        assert _hammer(registry) == []
    finally:
        registry.close()
    assert _discarded(caplog) == 0


@pytest.mark.etcd
def test_a_default_sized_pool_would_discard_connections(etcd_cluster, etcd_prefix, caplog) -> None:
    """The same load on requests' default pool (10) shows the warning the sizing removes."""
    etcd_cluster.wait_healthy()
    registry = EtcdRegistry(make_clients(etcd_cluster.endpoints, timeout=5, pool_size=10), etcd_prefix)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    try:
        assert _hammer(registry) == []
    finally:
        registry.close()
    print(f"discarded with a pool of 10: {_discarded(caplog)}")
    assert _discarded(caplog) > 0
