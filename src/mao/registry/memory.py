"""An in-memory registry for unit tests: same semantics as the real ones, no I/O."""

from __future__ import annotations

import copy
import itertools
import threading
import time
from typing import Any

from mao.registry.base import Lease, Registry


class MemoryRegistry(Registry):
    backend = "memory"

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._data: dict[str, tuple[dict[str, Any], str | None]] = {}
        self._leases: dict[str, tuple[int, float]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._clock = clock
        self.down = False

    def _check(self) -> None:
        if self.down:
            from mao.errors import RegistryUnavailable

            raise RegistryUnavailable("memory registry is down")

    def _expire(self) -> None:
        now = self._clock()
        dead = {lid for lid, (_, until) in self._leases.items() if until <= now}
        for lid in dead:
            del self._leases[lid]
        for key in [k for k, (_, lid) in self._data.items() if lid is not None and lid not in self._leases]:
            del self._data[key]

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            self._check()
            self._expire()
            item = self._data.get(key)
            return copy.deepcopy(item[0]) if item else None

    def put(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> None:
        with self._lock:
            self._check()
            self._data[key] = (copy.deepcopy(value), lease.id if lease else None)

    def create(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> bool:
        with self._lock:
            self._check()
            self._expire()
            if key in self._data:
                return False
            self.put(key, value, lease)
            return True

    def delete(self, key: str) -> bool:
        with self._lock:
            self._check()
            self._expire()
            return self._data.pop(key, None) is not None

    def list(self, prefix: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            self._check()
            self._expire()
            return {
                k[len(prefix) :]: copy.deepcopy(v) for k, (v, _) in sorted(self._data.items()) if k.startswith(prefix)
            }

    def grant(self, ttl: int) -> Lease:
        with self._lock:
            self._check()
            lease = Lease(str(next(self._ids)), ttl)
            self._leases[lease.id] = (ttl, self._clock() + ttl)
            return lease

    def refresh(self, lease: Lease) -> bool:
        with self._lock:
            self._check()
            self._expire()
            if lease.id not in self._leases:
                return False
            self._leases[lease.id] = (lease.ttl, self._clock() + lease.ttl)
            return True

    def revoke(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(lease.id, None)
            self._expire()

    def ping(self) -> dict[str, Any]:
        self._check()
        return {"backend": self.backend}
