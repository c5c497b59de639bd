from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd3gw.client import Etcd3Client

from mao.registry import Registry
from mao.registry.etcd import EtcdRegistry, make_clients
from mao.registry.local import LocalRegistry
from mao.registry.memory import MemoryRegistry
from mao.store import Store, make_engine

BACKENDS = [
    "memory",
    "local-sqlite",
    pytest.param("local-postgres", marks=pytest.mark.postgres),
    pytest.param("etcd", marks=pytest.mark.etcd),
]


def raw_client(endpoint: str) -> Etcd3Client:
    return make_clients([endpoint], timeout=5)[0]


@pytest.fixture
def etcd_registry(etcd_cluster, etcd_prefix: str) -> Iterator[EtcdRegistry]:
    """An EtcdRegistry on every member of the cluster, under a prefix of its own."""
    etcd_cluster.wait_healthy()
    reg = EtcdRegistry(make_clients(etcd_cluster.endpoints, timeout=5), etcd_prefix)
    try:
        yield reg
    finally:
        reg.close()
        client = raw_client(etcd_cluster.endpoints[0])
        try:
            client.delete_prefix(etcd_prefix)
        except Exception:
            pass
        client.session.close()


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """Every Registry backend; the contract tests must pass on each."""
    kind = request.param
    if kind == "memory":
        yield MemoryRegistry()
        return
    if kind == "etcd":
        yield request.getfixturevalue("etcd_registry")
        return
    url = f"sqlite:///{tmp_path / 'reg.db'}" if kind == "local-sqlite" else request.getfixturevalue("pg_database")
    store = Store(make_engine(url))
    store.migrate()
    reg = LocalRegistry(store)
    try:
        yield reg
    finally:
        reg.close()
        store.close()
