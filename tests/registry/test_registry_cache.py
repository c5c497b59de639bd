"""The in-memory catalog cache of the etcd and local registries, against real etcd, SQLite
and PostgreSQL: other writers seen within the bound, own writes at once, deletes, a broken
or silent watch, leases that lapse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from mao.registry.cache import MISS
from mao.registry.etcd import EtcdRegistry, make_clients
from mao.registry.keys import LOCAL_GENERATION as GENERATION
from mao.registry.local import LocalRegistry
from mao.store import Store, make_engine

BOUND = 1.0
"""max_stale of the caches under test: a read is never older than this."""


def from_cache(registry: Any, key: str) -> Any:
    """The cache's own answer for ``key`` (MISS when it would not answer)."""
    return registry.cache.get(key)


# ------------------------------------------------------------------------ etcd


@pytest.fixture
def etcd_pair(etcd_cluster, etcd_prefix: str) -> Iterator[tuple[EtcdRegistry, EtcdRegistry]]:
    """A registry with a started cache, and another client (no cache) on the same prefix."""
    etcd_cluster.wait_healthy()
    cached = EtcdRegistry(make_clients(etcd_cluster.endpoints, timeout=5), etcd_prefix, cache_max_stale=BOUND)
    other = EtcdRegistry(make_clients(etcd_cluster.endpoints, timeout=5), etcd_prefix)
    other.put("tools/first", {"image": "one"})
    cached.start_cache()
    try:
        wait_for(cached.cache.fresh, 10, "the cache is loaded and verified")
        yield cached, other
    finally:
        cached.close()
        other.close()


@pytest.mark.etcd
def test_etcd_cache_sees_other_writers_and_deletes_within_the_bound(etcd_pair) -> None:
    cached, other = etcd_pair
    assert from_cache(cached, "tools/first") == {"image": "one"}
    assert cached.cached("tools/").values == {"first": {"image": "one"}}

    other.put("tools/second", {"image": "two"})
    wait_for(
        lambda: from_cache(cached, "tools/second") == {"image": "two"}, BOUND, "a put by another client", interval=0.005
    )
    assert cached.list("tools/") == {"first": {"image": "one"}, "second": {"image": "two"}}

    other.put("tools/second", {"image": "two", "v": 2})
    wait_for(lambda: cached.get("tools/second") == {"image": "two", "v": 2}, BOUND, "an update by another client")

    assert other.delete("tools/first")
    wait_for(lambda: from_cache(cached, "tools/first") is None, BOUND, "a delete by another client")
    assert cached.list("tools/") == {"second": {"image": "two", "v": 2}}
    assert "first" not in cached.cached("tools/").values

    # keys outside the catalog are not cached, and still read from etcd
    other.put("locks/x", {"owner": "o"})
    assert from_cache(cached, "locks/x") is MISS
    assert cached.get("locks/x") == {"owner": "o"}


@pytest.mark.etcd
def test_etcd_cache_reads_its_own_writes_at_once(etcd_pair) -> None:
    cached, _ = etcd_pair
    for i in range(20):
        cached.put(f"datasets/d{i}", {"master": f"m{i}"})
        assert cached.get(f"datasets/d{i}") == {"master": f"m{i}"}
        assert f"d{i}" in cached.list("datasets/")
        view = cached.cached("datasets/")
        assert view is None or f"d{i}" in view.values  # never a copy without the write
        assert cached.delete(f"datasets/d{i}")
        assert cached.get(f"datasets/d{i}") is None
        view = cached.cached("datasets/")
        assert view is None or f"d{i}" not in view.values
    assert cached.create("pipelines/p", {"steps": []})
    assert cached.get("pipelines/p") == {"steps": []}
    # the watch catches up: the copy answers again, with every write in it
    wait_for(lambda: cached.cached("pipelines/") is not None, 2 * BOUND, "the cache is current again")
    assert cached.cached("pipelines/").values == {"p": {"steps": []}}
    assert cached.cached("datasets/").values == {}


@pytest.mark.etcd
def test_etcd_cache_falls_back_while_the_watch_is_broken_and_resyncs(etcd_pair) -> None:
    cached, other = etcd_pair
    follower = cached._follower
    streams = follower.streams
    # the connection drops: the cache stops answering at once, and the watch is opened again
    follower._break_stream()
    wait_for(lambda: follower.streams > streams, 5, "the watch is opened again")
    # now the watch gets nothing through, as if its connection had died silently
    cached.cache.apply = lambda events, revision: None
    other.put("tools/during", {"image": "during"})
    # a check that began before the put may still vouch for the copy, for the bound at most. The
    # verifier reopens a watch it has disagreed with for longer than the bound (from the revision the
    # cache had): once it has, the bound has passed, and whatever the copy holds every read is right,
    # through to the next time it gives up on the watch
    wait_for(lambda: follower.streams >= streams + 2, 3 * BOUND + 5, "the silent watch to be reopened")

    def reads_right_until_reopened_again() -> bool:
        assert cached.get("tools/during") == {"image": "during"}
        assert cached.list("tools/") == {"first": {"image": "one"}, "during": {"image": "during"}}
        assert from_cache(cached, "tools/during") is MISS  # the copy lacks it, so it does not answer
        return follower.streams >= streams + 3

    wait_for(reads_right_until_reopened_again, 3 * BOUND + 5, "the silent watch to be reopened again")
    del cached.cache.apply
    wait_for(lambda: from_cache(cached, "tools/during") == {"image": "during"}, 3 * BOUND + 5, "resync")
    assert cached.cached("tools/").values == {"first": {"image": "one"}, "during": {"image": "during"}}


@pytest.mark.etcd
def test_etcd_cache_loads_again_when_its_revision_was_compacted(etcd_cluster, etcd_pair, caplog) -> None:
    cached, other = etcd_pair
    follower = cached._follower
    cached.cache.apply = lambda events, revision: None  # the watch misses what follows
    other.put("tools/x", {"image": "x"})
    other.delete("tools/first")
    client = make_clients(etcd_cluster.endpoints, timeout=5)[0]
    try:
        revision = int(client.post(client.get_url("/kv/range"), json={"key": "eA=="})["header"]["revision"])
        client.post(client.get_url("/kv/compaction"), json={"revision": revision, "physical": True})
    finally:
        client.session.close()
    assert cached.cache.revision < revision
    del cached.cache.apply
    follower._break_stream()  # reopened from a compacted revision: etcd refuses, the cache loads anew
    wait_for(lambda: from_cache(cached, "tools/x") == {"image": "x"}, 10, "a full load after compaction")
    assert cached.cached("tools/").values == {"x": {"image": "x"}}
    assert "was compacted" in caplog.text


@pytest.mark.etcd
def test_etcd_cache_follows_a_stopped_member(etcd_cluster, etcd_pair) -> None:
    cached, other = etcd_pair
    watched = cached.current
    etcd_cluster.stop_member(watched)
    try:
        # at once: the cache stops answering (until the watch has moved: polled closely), reads go to the members up
        # (on a busy machine the watch may have moved before a poll sees the stale window)
        wait_for(
            lambda: not cached.cache.fresh() or cached.current != watched,
            5,
            "the cache is marked stale, or its watch moved off the stopped member",
            interval=0.005,
        )
        other.put("tools/while-down", {"image": "w"})
        assert cached.get("tools/while-down") == {"image": "w"}
        # the watch moves to another member, from the revision it had applied
        wait_for(lambda: from_cache(cached, "tools/while-down") == {"image": "w"}, 15, "watch on another member")
        assert cached.current != watched
    finally:
        etcd_cluster.start_member(watched, state="existing")
        etcd_cluster.wait_healthy()
    assert cached.list("tools/") == {"first": {"image": "one"}, "while-down": {"image": "w"}}


@pytest.mark.etcd
def test_etcd_cache_keys_under_a_lease_go_with_it(etcd_pair) -> None:
    cached, other = etcd_pair
    lease = cached.grant(30)
    cached.put("tools/leased", {"image": "l"}, lease)
    assert cached.get("tools/leased") == {"image": "l"}
    cached.revoke(lease)
    assert cached.get("tools/leased") is None
    lease = other.grant(30)
    other.put("tools/theirs", {"image": "t"}, lease)
    wait_for(lambda: from_cache(cached, "tools/theirs") == {"image": "t"}, BOUND, "their leased key")
    other.revoke(lease)
    wait_for(lambda: from_cache(cached, "tools/theirs") is None, BOUND, "their lease revoked")


# ------------------------------------------------------------------------ local (SQL)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reg.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def local_pair(store_url: str) -> Iterator[tuple[LocalRegistry, LocalRegistry]]:
    """A registry with a started cache, and another on its own engine (as another process would be)."""
    stores = [Store(make_engine(store_url)), Store(make_engine(store_url))]
    stores[0].migrate()
    cached = LocalRegistry(stores[0], cache_max_stale=BOUND)
    other = LocalRegistry(stores[1])
    other.put("tools/first", {"image": "one"})
    cached.start_cache()
    try:
        wait_for(cached.cache.fresh, 10, "the cache is loaded and verified")
        yield cached, other
    finally:
        cached.close()
        for store in stores:
            store.close()


def test_local_cache_sees_another_process_within_the_bound(local_pair) -> None:
    cached, other = local_pair
    assert from_cache(cached, "tools/first") == {"image": "one"}
    other.put("tools/second", {"image": "two"})
    wait_for(
        lambda: from_cache(cached, "tools/second") == {"image": "two"}, BOUND, "another process's put", interval=0.005
    )
    assert other.delete("tools/first")
    wait_for(lambda: from_cache(cached, "tools/first") is None, BOUND, "another process's delete")
    assert cached.list("tools/") == {"second": {"image": "two"}}
    assert cached.cached("tools/").values == {"second": {"image": "two"}}


def test_local_cache_reads_its_own_writes_at_once(local_pair) -> None:
    cached, _ = local_pair
    for i in range(10):
        cached.put(f"datasets/d{i}", {"master": f"m{i}"})
        assert cached.get(f"datasets/d{i}") == {"master": f"m{i}"}
        view = cached.cached("datasets/")
        assert view is None or f"d{i}" in view.values
        assert cached.delete(f"datasets/d{i}")
        assert cached.get(f"datasets/d{i}") is None
        assert f"d{i}" not in cached.list("datasets/")
    assert cached.create("tools/made", {"image": "m"})
    assert cached.get("tools/made") == {"image": "m"}
    wait_for(lambda: cached.cached("tools/") is not None, 2 * BOUND, "the cache is current again")
    assert cached.cached("tools/").values == {"first": {"image": "one"}, "made": {"image": "m"}}


def test_local_cache_drops_a_lapsed_lease_and_hides_its_bookkeeping(local_pair) -> None:
    cached, other = local_pair
    lease = other.grant(1)
    other.put("tools/leased", {"image": "l"}, lease)
    wait_for(lambda: from_cache(cached, "tools/leased") == {"image": "l"}, BOUND, "a leased key")
    # nobody writes when a lease lapses: the copy must not outlive it
    wait_for(lambda: cached.get("tools/leased") is None, 3, "the key gone with its lease")
    assert "leased" not in cached.list("tools/")
    assert GENERATION not in cached.list("")
    assert not any(key.startswith("_") for key in cached.list(""))


def test_local_cache_answers_nothing_when_the_store_is_away(local_pair, monkeypatch: pytest.MonkeyPatch) -> None:
    cached, _ = local_pair
    from mao.errors import RegistryUnavailable

    def down(*_args, **_kwargs):
        raise RegistryUnavailable("the store is away for the test")

    monkeypatch.setattr(cached, "_session", down)
    # checks fail from now on: within the bound the copy stops answering and reads say so
    wait_for(lambda: cached.cached("tools/") is None, BOUND + 1, "the copy stops answering")
    with pytest.raises(RegistryUnavailable):
        cached.list("tools/")
