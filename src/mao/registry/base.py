"""The federation registry: a JSON key-value store with leases and TTL-bounded locks.

Keys given to a Registry are relative (``tools/docker-collector``); each backend adds
its configured prefix. Values are JSON objects.
"""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mao.errors import LockTimeout, MAOError
from mao.loop import STOP, LoopService
from mao.registry.cache import CachedValues
from mao.registry.keys import lock_key

log = logging.getLogger(__name__)


@dataclass
class Lease:
    """A handle on a time-to-live. Keys put with it vanish when it expires or is revoked."""

    id: str
    ttl: int


class Registry(ABC):
    backend = "registry"

    @abstractmethod
    def get(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def put(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> None: ...

    @abstractmethod
    def create(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> bool:
        """Put only if the key is absent; atomic. True if created."""

    @abstractmethod
    def delete(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every key under ``prefix``, mapped to its value; keys relative to ``prefix``."""

    @abstractmethod
    def grant(self, ttl: int) -> Lease: ...

    @abstractmethod
    def refresh(self, lease: Lease) -> bool:
        """Extend the lease by its TTL; False if it already expired."""

    @abstractmethod
    def revoke(self, lease: Lease) -> None: ...

    @abstractmethod
    def ping(self) -> dict[str, Any]:
        """Backend facts; raises RegistryUnavailable when it cannot be reached."""

    def close(self) -> None:
        pass

    # the read cache (see mao.registry.cache) ----------------------------------------

    def start_cache(self) -> None:
        """Begin keeping the catalog in memory, where the backend can (a serving process calls this)."""

    def get_latest(self, key: str) -> dict[str, Any] | None:
        """``get`` from the registry itself, never from a cache: for read-modify-write under a lock."""
        return self.get(key)

    def on_change(self, callback: Callable[[str, bool], None]) -> bool:
        """Have ``callback(key, deleted)`` called for each change of a key, as the backend
        sees it happen (etcd's watch); False when this backend cannot (then poll)."""
        return False

    def cached(self, prefix: str) -> CachedValues | None:
        """The values under a catalog prefix (``tools/``, ``datasets/``, ``pipelines/``) from
        the in-memory cache, without I/O; None when there is no current cache."""
        return None

    # conveniences built on the primitives ------------------------------------

    def put_with_ttl(self, key: str, value: dict[str, Any], ttl: int) -> Lease:
        lease = self.grant(ttl)
        self.put(key, value, lease)
        return lease

    def lock(self, name: str, ttl: int = 30, owner: str = "") -> Lock:
        return Lock(self, name, ttl=ttl, owner=owner)


class KeepAlive(LoopService):
    """Keeps a lease alive from a background loop, refreshing it every third of its TTL.

    When a refresh finds the lease gone (the registry was unreachable for longer than the
    TTL), a lock's keep-alive calls ``on_lost`` and ends; with ``renew`` (the instance
    heartbeat) a new lease is granted and ``renew(lease)`` puts the keys back under it.
    ``each_round(lease)``, when given, runs after every successful refresh.
    """

    name = "lease"

    def __init__(
        self,
        registry: Registry,
        lease: Lease | None = None,
        on_lost: Callable[[], Any] | None = None,
        *,
        ttl: int | None = None,
        renew: Callable[[Lease], Any] | None = None,
        each_round: Callable[[Lease], Any] | None = None,
        interval: float | None = None,
    ) -> None:
        if lease is None and (renew is None or ttl is None):
            raise ValueError("give a lease, or a ttl and renew to grant one")
        self.ttl = ttl if ttl is not None else lease.ttl  # type: ignore[union-attr]
        super().__init__(interval or max(self.ttl / 3, 0.5), name=f"lease-{lease.id if lease else 'new'}")
        self.registry = registry
        self.lease = lease
        self.on_lost = on_lost
        self.renew = renew
        self.each_round = each_round

    def start(self) -> KeepAlive:
        super().start()
        return self

    def beat(self) -> None:
        """One round, also callable directly: refresh the lease, or re-grant it when it lapsed."""
        if self.lease is not None and self.registry.refresh(self.lease):
            if self.each_round is not None:
                self.each_round(self.lease)
            return
        if self.renew is None:
            raise _LeaseLost
        self.lease = self.registry.grant(self.ttl)
        self.renew(self.lease)

    def run_once(self) -> Any:
        try:
            self.beat()
        except _LeaseLost:
            log.warning("lease %s expired before it could be refreshed", self.lease.id if self.lease else "?")
            if self.on_lost:
                self.on_lost()
            return STOP
        return None

    def on_error(self, exc: Exception) -> None:  # keep trying while a member is down
        log.warning("could not refresh lease %s: %s", self.lease.id if self.lease else "(none)", exc)


class _LeaseLost(Exception):
    pass


class Lock:
    """A federation-wide mutex: the key ``locks/<name>`` held under a lease.

    A holder that crashes stops refreshing its lease, so the lock frees itself within
    ``ttl`` seconds.
    """

    def __init__(self, registry: Registry, name: str, *, ttl: int = 30, owner: str = "") -> None:
        self.registry = registry
        self.key = lock_key(name)
        self.ttl = ttl
        self.token = uuid.uuid4().hex
        self.owner = owner
        self._lease: Lease | None = None
        self._keepalive: KeepAlive | None = None

    @property
    def held(self) -> bool:
        return self._lease is not None

    def busy(self) -> bool:
        """Whether someone holds the lock now (one read: no lease granted to find out)."""
        return self.registry.get(self.key) is not None

    def acquire(self, timeout: float = 60.0, poll: float = 0.2) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            lease = self.registry.grant(self.ttl)
            value = {"owner": self.owner, "token": self.token, "since": time.time()}
            if self.registry.create(self.key, value, lease):
                self._lease = lease
                self._keepalive = KeepAlive(self.registry, lease).start()
                return True
            self.registry.revoke(lease)
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def release(self) -> None:
        if self._keepalive:
            self._keepalive.stop()
            self._keepalive = None
        if self._lease is not None:
            try:
                # revoking the lease deletes the key with it, atomically
                self.registry.revoke(self._lease)
            except MAOError as exc:
                log.warning("could not release %s (it expires within %ss): %s", self.key, self.ttl, exc.message)
            finally:
                self._lease = None

    def __enter__(self) -> Lock:
        if not self.acquire():
            holder = (self.registry.get(self.key) or {}).get("owner", "another holder")
            raise LockTimeout(f"lock {self.key} is held by {holder}; try again later")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
