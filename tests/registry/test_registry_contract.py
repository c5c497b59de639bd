"""One contract for every Registry backend: memory, local (SQLite, PostgreSQL) and etcd."""

from __future__ import annotations

import functools
import json
import threading
import time

import pytest
from waiting import wait_for

from mao.errors import LockTimeout
from mao.registry import Lock, Registry
from mao.registry.base import KeepAlive

TTL = 2


def test_get_missing_is_none(registry: Registry) -> None:
    assert registry.get("tools/nothing-here") is None


def test_put_then_get_round_trips_json(registry: Registry) -> None:
    value = {"image": "mao/collector:1.0", "nested": {"n": 1, "ok": True, "none": None}, "list": [1, "two"]}
    registry.put("tools/collector", value)
    assert registry.get("tools/collector") == value


def test_put_overwrites(registry: Registry) -> None:
    registry.put("tools/a", {"v": 1})
    registry.put("tools/a", {"v": 2})
    assert registry.get("tools/a") == {"v": 2}


def test_returned_values_are_copies(registry: Registry) -> None:
    registry.put("tools/a", {"nodes": ["x"]})
    got = registry.get("tools/a")
    got["nodes"].append("y")
    assert registry.get("tools/a") == {"nodes": ["x"]}


def test_create_only_if_absent(registry: Registry) -> None:
    assert registry.create("datasets/d", {"v": 1}) is True
    assert registry.create("datasets/d", {"v": 2}) is False
    assert registry.get("datasets/d") == {"v": 1}


def test_delete(registry: Registry) -> None:
    registry.put("tools/a", {"v": 1})
    assert registry.delete("tools/a") is True
    assert registry.get("tools/a") is None
    assert registry.delete("tools/a") is False
    assert registry.create("tools/a", {"v": 3}) is True


def test_list_by_prefix_gives_relative_keys(registry: Registry) -> None:
    registry.put("tools/b", {"n": "b"})
    registry.put("tools/a", {"n": "a"})
    registry.put("tools-other/c", {"n": "c"})
    registry.put("datasets/a", {"n": "d"})
    listed = registry.list("tools/")
    assert listed == {"a": {"n": "a"}, "b": {"n": "b"}}
    assert list(listed) == ["a", "b"]
    assert registry.list("nothing/") == {}


def test_list_everything_gives_only_the_keys_put(registry: Registry) -> None:
    registry.put("tools/a", {"v": 1})
    registry.put_with_ttl("instances/me", {"v": 2}, ttl=30)
    with registry.lock("l", ttl=30, owner="me"):
        assert set(registry.list("")) == {"tools/a", "instances/me", "locks/l"}


def test_list_prefix_is_literal(registry: Registry) -> None:
    """SQL wildcards in a prefix match only themselves."""
    registry.put("a%b/x", {"v": 1})
    registry.put("a_b/y", {"v": 2})
    registry.put("axb/z", {"v": 3})
    assert registry.list("a%b/") == {"x": {"v": 1}}
    assert registry.list("a_b/") == {"y": {"v": 2}}


def test_put_with_ttl_expires_unless_refreshed(registry: Registry) -> None:
    # raw/kept is granted first, so without its refreshes it would expire no later than raw/short
    kept = registry.put_with_ttl("raw/kept", {"v": 2}, ttl=TTL)
    keepalive = KeepAlive(registry, kept).start()
    registry.put_with_ttl("raw/short", {"v": 1}, ttl=TTL)
    try:
        started = time.monotonic()
        assert registry.get("raw/short") == {"v": 1}
        assert set(registry.list("raw/")) == {"short", "kept"}
        assert registry.create("raw/short", {"v": 9}) is False
        wait_for(lambda: registry.get("raw/short") is None, timeout=TTL + 4, message="raw/short to expire")
        assert time.monotonic() - started >= TTL - 1.0
        assert registry.get("raw/kept") == {"v": 2}
        assert "short" not in registry.list("raw/")
        assert registry.delete("raw/short") is False
        assert registry.create("raw/short", {"v": 3}) is True  # an expired key is free again
        assert registry.get("raw/short") == {"v": 3}
    finally:
        keepalive.stop()
    registry.revoke(kept)
    assert registry.get("raw/kept") is None
    assert registry.refresh(kept) is False
    registry.revoke(kept)  # revoking twice is harmless


def test_revoke_deletes_keys_of_the_lease_only(registry: Registry) -> None:
    lease = registry.grant(30)
    registry.put("instances/a", {"v": 1}, lease)
    registry.put("instances/b", {"v": 2})
    assert registry.refresh(lease) is True
    registry.revoke(lease)
    assert registry.list("instances/") == {"b": {"v": 2}}


def test_lock_excludes_a_second_holder(registry: Registry) -> None:
    a = registry.lock("ds", ttl=10, owner="node-a")
    b = registry.lock("ds", ttl=10, owner="node-b")
    assert a.acquire(timeout=1)
    try:
        assert a.held
        assert b.acquire(timeout=0.3) is False
        assert not b.held
        assert registry.get("locks/ds")["owner"] == "node-a"
    finally:
        a.release()
    assert not a.held
    assert registry.get("locks/ds") is None
    assert b.acquire(timeout=1)
    assert registry.get("locks/ds")["owner"] == "node-b"
    b.release()


def test_locks_with_other_names_do_not_exclude(registry: Registry) -> None:
    with registry.lock("one", ttl=10), registry.lock("two", ttl=10):
        assert set(registry.list("locks/")) == {"one", "two"}
    assert registry.list("locks/") == {}


def test_only_one_of_many_threads_holds_the_lock(registry: Registry) -> None:
    holders: list[str] = []
    inside = 0
    most = 0
    guard = threading.Lock()

    def worker(i: int) -> None:
        nonlocal inside, most
        lock = registry.lock("busy", ttl=10, owner=f"w{i}")
        if lock.acquire(timeout=15, poll=0.05):
            try:
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.05)
                holders.append(f"w{i}")
                with guard:
                    inside -= 1
            finally:
                lock.release()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert most == 1
    assert sorted(holders) == ["w0", "w1", "w2", "w3"]


def test_crashed_holder_frees_the_lock_within_its_ttl(registry: Registry) -> None:
    a = registry.lock("merge-ds", ttl=TTL, owner="crashed")
    b = registry.lock("merge-ds", ttl=TTL, owner="survivor")
    assert a.acquire(timeout=1)
    assert a._keepalive is not None and a._keepalive._thread.is_alive()
    assert b.acquire(timeout=0) is False

    a._keepalive.stop()  # the holder "crashes": no more refreshes, no release
    crashed_at = time.monotonic()
    assert b.acquire(timeout=TTL + 5, poll=0.1)
    assert time.monotonic() - crashed_at <= TTL + 3
    try:
        assert registry.get("locks/merge-ds")["token"] == b.token
        # the crashed holder wakes up and releases: it must not free the survivor's lock
        a.release()
        assert registry.get("locks/merge-ds")["token"] == b.token
        assert registry.lock("merge-ds", ttl=TTL).acquire(timeout=0) is False
    finally:
        b.release()
    assert registry.get("locks/merge-ds") is None


def test_lock_context_manager_releases_on_error(registry: Registry) -> None:
    with pytest.raises(RuntimeError):
        with registry.lock("ctx", ttl=10, owner="me") as lock:
            assert isinstance(lock, Lock) and lock.held
            raise RuntimeError("boom")
    assert registry.get("locks/ctx") is None


def test_lock_context_manager_names_the_holder_on_timeout(registry: Registry) -> None:
    holder = registry.lock("held", ttl=10, owner="node-a")
    assert holder.acquire(timeout=1)
    try:
        other = registry.lock("held", ttl=10, owner="node-b")
        other.acquire = functools.partial(Lock.acquire, other, timeout=0.3)  # type: ignore[method-assign]
        with pytest.raises(LockTimeout, match="node-a"):
            other.__enter__()
    finally:
        holder.release()


def test_values_are_stored_as_json_objects(registry: Registry) -> None:
    registry.put("tools/q", {"quote": 'it\'s "quoted"', "unicode": "é✓"})
    assert registry.get("tools/q") == {"quote": 'it\'s "quoted"', "unicode": "é✓"}
    json.dumps(registry.list("tools/"))  # JSON all the way


def test_ping(registry: Registry) -> None:
    assert registry.ping()["backend"] == registry.backend
