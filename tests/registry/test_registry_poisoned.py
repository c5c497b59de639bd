"""A value written into the registry by something other than an instance (straight into etcd,
or into the local table) may be anything; reading it, or the prefix holding it, never fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from mao.insights import read_insights
from mao.registry.cache import REGISTRY_JSON_DEPTH, UNREADABLE
from mao.registry.etcd import make_clients
from mao.registry.local import LocalRegistry
from mao.store import Store, make_engine
from mao.store.models import RegistryEntry

DEEP = '{"value": ' + "[" * 5_000 + "]" * 5_000 + "}"  # json.loads would recurse past Python's limit


def check(registry) -> None:
    listed = registry.list("insights/")
    assert listed["hub/good"] == {"value": {"images": 42}}
    unreadable = {UNREADABLE: f"nested deeper than {REGISTRY_JSON_DEPTH} levels of arrays and objects"}
    assert listed["hub/poisoned"] == unreadable  # no reader takes it for a record of its kind
    assert registry.get("insights/hub/poisoned") == unreadable
    assert registry.get("insights/hub/good") == {"value": {"images": 42}}
    listed, skipped = read_insights(registry)
    assert [(i["pipeline"], i["step"]) for i in listed] == [("hub", "good")]
    assert skipped[0]["key"] == "insights/hub/poisoned"


def test_a_deep_value_in_the_local_table_is_read_as_text(tmp_path: Path) -> None:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'reg.db'}"))
    store.migrate()
    registry = LocalRegistry(store)
    try:
        registry.put("insights/hub/good", {"value": {"images": 42}})
        with store.session() as s:
            s.add(RegistryEntry(key="insights/hub/poisoned", value=DEEP))
        check(registry)
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
    client = make_clients([etcd_cluster.endpoints[0]], timeout=5)[0]
    try:
        client.put(etcd_prefix + "insights/hub/poisoned", DEEP)
    finally:
        client.session.close()
    check(etcd_registry)
