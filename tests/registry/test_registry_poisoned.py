"""A value written into the registry by something other than an instance (straight into etcd,
or into the local table) may be anything; reading it, or the prefix holding it, never fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import raw_client

from mao.registry.cache import REGISTRY_JSON_DEPTH
from mao.registry.local import LocalRegistry
from mao.store import Store, make_engine
from mao.store.models import RegistryEntry

DEEP = '{"value": ' + "[" * 5_000 + "]" * 5_000 + "}"  # json.loads would recurse past Python's limit


def check(registry, expected_deep_text: str) -> None:
    listed = registry.list("insights/")
    assert listed["hub/good"] == {"value": {"images": 42}}
    assert listed["hub/poisoned"] == {"value": expected_deep_text}  # raw text: a reader expecting fields skips it
    assert registry.get("insights/hub/poisoned") == {"value": expected_deep_text}
    assert registry.get("insights/hub/good") == {"value": {"images": 42}}


def test_a_deep_value_in_the_local_table_is_read_as_text(tmp_path: Path) -> None:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'reg.db'}"))
    store.migrate()
    registry = LocalRegistry(store)
    try:
        registry.put("insights/hub/good", {"value": {"images": 42}})
        with store.session() as s:
            s.add(RegistryEntry(key="insights/hub/poisoned", value=DEEP))
        check(registry, DEEP)
        # at the bound, still parsed
        shallow = '{"value": ' + "[" * (REGISTRY_JSON_DEPTH - 1) + "]" * (REGISTRY_JSON_DEPTH - 1) + "}"
        with store.session() as s:
            s.add(RegistryEntry(key="insights/hub/bound", value=shallow))
        assert isinstance(registry.get("insights/hub/bound")["value"], list)
    finally:
        registry.close()
        store.close()


@pytest.mark.etcd
def test_a_deep_value_put_straight_into_etcd_is_read_as_text(etcd_registry, etcd_cluster, etcd_prefix) -> None:
    etcd_registry.put("insights/hub/good", {"value": {"images": 42}})
    client = raw_client(etcd_cluster.endpoints[0])
    try:
        client.put(etcd_prefix + "insights/hub/poisoned", DEEP)
    finally:
        client.session.close()
    check(etcd_registry, DEEP)
