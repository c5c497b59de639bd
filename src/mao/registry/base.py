"""The federation registry: a JSON key-value store with leases and TTL-bounded locks.

Keys given to a Registry are relative (``tools/docker-collector``); each backend adds
its configured prefix. Values are JSON objects.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from mao.errors import LockTimeout, MAOError

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

    # conveniences built on the primitives ------------------------------------

    def put_with_ttl(self, key: str, value: dict[str, Any], ttl: int) -> Lease:
        lease = self.grant(ttl)
        self.put(key, value, lease)
        return lease

    def lock(self, name: str, ttl: int = 30, owner: str = "") -> Lock:
        return Lock(self, name, ttl=ttl, owner=owner)


class KeepAlive:
    """Refreshes a lease from a daemon thread until stopped."""

    def __init__(self, registry: Registry, lease: Lease, on_lost: Any = None) -> None:
        self.registry = registry
        self.lease = lease
        self.on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{lease.id}", daemon=True)

    def start(self) -> KeepAlive:
        self._thread.start()
        return self

    def _loop(self) -> None:
        interval = max(self.lease.ttl / 3, 0.5)
        while not self._stop.wait(interval):
            try:
                if not self.registry.refresh(self.lease):
                    log.warning("lease %s expired before it could be refreshed", self.lease.id)
                    if self.on_lost:
                        self.on_lost()
                    return
            except Exception as exc:  # noqa: BLE001 - keep trying while a member is down
                log.warning("could not refresh lease %s: %s", self.lease.id, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


class Lock:
    """A federation-wide mutex: the key ``locks/<name>`` held under a lease.

    A holder that crashes stops refreshing its lease, so the lock frees itself within
    ``ttl`` seconds.
    """

    def __init__(self, registry: Registry, name: str, *, ttl: int = 30, owner: str = "") -> None:
        self.registry = registry
        self.key = f"locks/{name}"
        self.ttl = ttl
        self.token = uuid.uuid4().hex
        self.owner = owner
        self._lease: Lease | None = None
        self._keepalive: KeepAlive | None = None

    @property
    def held(self) -> bool:
        return self._lease is not None

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
