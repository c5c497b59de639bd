"""A transparent proxy around a :class:`~mao.registry.base.Registry` that times every call.

Each primitive (get, put, create, delete, list, grant, refresh, revoke, ping) is timed and
handed to ``observe(backend, op, seconds, error)``; locks taken through it also report how
long acquiring them took to ``on_lock_wait(name, seconds)``. Anything else (an etcd
registry's member operations, a test double's switches) is read from the wrapped registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from mao.registry.base import Lease, Lock, Registry
from mao.registry.cache import CachedValues

Observe = Callable[[str, str, float, bool], None]
LockWait = Callable[[str, float], None]
T = TypeVar("T")


class MeteredRegistry(Registry):
    def __init__(self, inner: Registry, observe: Observe, on_lock_wait: LockWait | None = None) -> None:
        self.inner = inner
        self.backend = inner.backend
        self._observe = observe
        self._on_lock_wait = on_lock_wait

    def __getattr__(self, name: str) -> Any:  # only for what this class does not define
        if name == "inner":  # not set yet (e.g. while copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _timed(self, op: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            result = call()
        except BaseException:
            self._observe(self.backend, op, time.perf_counter() - started, True)
            raise
        self._observe(self.backend, op, time.perf_counter() - started, False)
        return result

    def get(self, key: str) -> dict[str, Any] | None:
        return self._timed("get", lambda: self.inner.get(key))

    def put(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> None:
        self._timed("put", lambda: self.inner.put(key, value, lease))

    def create(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> bool:
        return self._timed("create", lambda: self.inner.create(key, value, lease))

    def delete(self, key: str) -> bool:
        return self._timed("delete", lambda: self.inner.delete(key))

    def list(self, prefix: str) -> dict[str, dict[str, Any]]:
        return self._timed("list", lambda: self.inner.list(prefix))

    def grant(self, ttl: int) -> Lease:
        return self._timed("grant", lambda: self.inner.grant(ttl))

    def refresh(self, lease: Lease) -> bool:
        return self._timed("refresh", lambda: self.inner.refresh(lease))

    def revoke(self, lease: Lease) -> None:
        self._timed("revoke", lambda: self.inner.revoke(lease))

    def ping(self) -> dict[str, Any]:
        return self._timed("ping", self.inner.ping)

    def close(self) -> None:
        self.inner.close()

    # the read cache lives in the backend: forwarded, or the serving fast path is never taken
    def start_cache(self) -> None:
        self.inner.start_cache()

    def get_latest(self, key: str) -> dict[str, Any] | None:
        return self._timed("get", lambda: self.inner.get_latest(key))

    def cached(self, prefix: str) -> CachedValues | None:
        return self.inner.cached(prefix)

    def on_change(self, callback: Callable[[str, bool], None]) -> bool:
        return self.inner.on_change(callback)

    def lock(self, name: str, ttl: int = 30, owner: str = "") -> Lock:
        return TimedLock(self, name, ttl=ttl, owner=owner, on_wait=self._on_lock_wait)


class TimedLock(Lock):
    """A :class:`Lock` that reports how long it was waited for when it is got: from the first
    attempt (a merge train tries once at a time, between looks at its riders)."""

    def __init__(
        self, registry: Registry, name: str, *, ttl: int = 30, owner: str = "", on_wait: LockWait | None = None
    ) -> None:
        super().__init__(registry, name, ttl=ttl, owner=owner)
        self.name = name
        self._on_wait = on_wait
        self._first: float | None = None

    def busy(self) -> bool:
        if self._first is None:  # looking counts as waiting
            self._first = time.monotonic()
        return super().busy()

    def acquire(self, timeout: float = 60.0, poll: float = 0.2) -> bool:
        if self._first is None:
            self._first = time.monotonic()
        acquired = super().acquire(timeout, poll)
        if acquired:
            started, self._first = self._first, None
            if self._on_wait is not None:
                self._on_wait(self.name, time.monotonic() - started)
        return acquired


def unwrap(registry: Registry) -> Registry:
    """The registry a :class:`MeteredRegistry` wraps (or ``registry`` itself)."""
    return registry.inner if isinstance(registry, MeteredRegistry) else registry
