"""ReadCache on its own, with a clock the test moves: when it may answer, and what."""

from __future__ import annotations

import json

from mao.registry.cache import MISS, ReadCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def loaded(clock: Clock, **entries: dict) -> ReadCache:
    cache = ReadCache(2.0, clock=clock)
    snapshot = cache.load({k.replace("__", "/"): json.dumps(v) for k, v in entries.items()}, revision=10)
    assert snapshot is not None
    assert cache.confirm(snapshot, clock.now, 10)
    return cache


def test_answers_only_within_the_bound_of_the_last_agreeing_check() -> None:
    clock = Clock()
    cache = ReadCache(2.0, clock=clock)
    assert cache.get("tools/a") is MISS  # never loaded
    snapshot = cache.load({"tools/a": '{"image": "a"}', "locks/x": "{}"}, revision=5)
    assert cache.get("tools/a") is MISS  # loaded, not verified yet
    assert cache.confirm(snapshot, clock.now, 7)
    assert cache.get("tools/a") == {"image": "a"}
    assert cache.get("tools/b") is None  # the whole prefix is known: absent means absent
    assert cache.get("locks/x") is MISS  # not a cached prefix
    assert cache.revision == 7
    clock.now += 2.0
    assert cache.get("tools/a") == {"image": "a"}
    clock.now += 0.01
    assert cache.get("tools/a") is MISS and cache.list("tools/") is None and cache.view("tools/") is None


def test_a_check_that_overlaps_a_change_or_a_break_proves_nothing() -> None:
    clock = Clock()
    cache = loaded(clock, tools__a={"v": 1})
    before = cache.snapshot()
    cache.apply([("tools/b", '{"v": 2}', 11)], 11)
    clock.now += 5
    assert not cache.confirm(before, clock.now, 11)  # the cache changed while the check ran
    assert cache.get("tools/b") is MISS
    began = clock.now
    before = cache.snapshot()
    clock.now += 0.1
    cache.mark_stale()  # the watch broke while the check was on its way
    assert not cache.confirm(before, began, 11)
    assert cache.get("tools/a") is MISS
    clock.now += 0.1
    assert cache.confirm(cache.snapshot(), clock.now, 11)
    assert cache.list("tools/") == {"a": {"v": 1}, "b": {"v": 2}}


def test_own_writes_hold_the_cache_back_until_it_has_them() -> None:
    clock = Clock()
    cache = loaded(clock, tools__a={"v": 1})
    cache.expect(12)
    assert cache.get("tools/a") is MISS
    cache.apply([("tools/a", '{"v": 2}', 12)], 12)
    assert cache.get("tools/a") == {"v": 2}


def test_changes_apply_in_revision_order_and_views_stay_as_handed_out() -> None:
    clock = Clock()
    cache = loaded(clock, tools__a={"v": 1}, datasets__d={"master": "m"})
    view = cache.view("tools/")
    tools_version, datasets_version = view.version, cache.view("datasets/").version
    cache.apply([("tools/a", '{"v": 0}', 9)], 9)  # older than the load: already in
    assert cache.get("tools/a") == {"v": 1}
    cache.apply([("tools/a", None, 11), ("tools/c", '{"v": 3}', 11), ("locks/l", "{}", 11)], 11)
    assert cache.list("tools/") == {"c": {"v": 3}}
    assert view.values == {"a": {"v": 1}}  # what was handed out does not change under its reader
    assert cache.view("tools/").version != tools_version
    assert cache.view("datasets/").version == datasets_version  # untouched prefix, same version
    copy = cache.get("tools/c")
    copy["v"] = 99
    assert cache.get("tools/c") == {"v": 3}  # reads are copies


def test_a_lapsing_lease_ends_the_cache_and_a_load_can_lose_to_a_write() -> None:
    clock = Clock()
    cache = ReadCache(2.0, clock=clock)
    snapshot = cache.load({"tools/leased": "{}"}, lapses_in=1.0)
    assert cache.confirm(snapshot, clock.now)
    assert cache.get("tools/leased") == {}
    clock.now += 1.0
    assert cache.lapsed() and cache.get("tools/leased") is MISS
    before = cache.snapshot()
    cache.invalidate()  # a write of this process landed while a load was being read
    assert cache.load({"tools/old": "{}"}, if_unchanged=before) is None
    assert not cache.loaded
