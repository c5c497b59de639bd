"""Live membership: each serving instance keeps ``instances/<name>`` alive with a lease."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from mao.catalog import INSTANCES
from mao.errors import MAOError
from mao.registry.base import Lease

if TYPE_CHECKING:
    from mao.instance import Instance

log = logging.getLogger(__name__)


class Heartbeat:
    """Puts this instance's record under a lease and refreshes both until stopped.
    A lease that lapsed (e.g. etcd was unreachable for longer than the TTL) is re-granted."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.ttl = instance.settings.instance_ttl
        self._lease: Lease | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mao-heartbeat", daemon=True)

    def record(self) -> dict[str, Any]:
        s = self.instance.settings
        return {
            "name": s.instance_name,
            "api_url": s.api_url,
            "version": self.instance.version,
            "registry": s.registry_backend,
            "last_seen": time.time(),
        }

    def beat(self) -> None:
        registry = self.instance.registry
        if self._lease is None or not registry.refresh(self._lease):
            self._lease = registry.grant(self.ttl)
        registry.put(INSTANCES + self.instance.name, self.record(), self._lease)

    def start(self) -> None:
        try:
            self.beat()
        finally:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(max(self.ttl / 3, 1)):
            try:
                self.beat()
            except MAOError as exc:
                log.warning("heartbeat failed: %s", exc.message)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._lease is not None:
            try:
                self.instance.registry.revoke(self._lease)
            except MAOError as exc:
                log.warning("could not withdraw this instance from the registry: %s", exc.message)


def start_heartbeat(instance: Instance) -> None:
    heartbeat = Heartbeat(instance)
    instance.heartbeat = heartbeat  # type: ignore[attr-defined]
    heartbeat.start()


def stop_heartbeat(instance: Instance) -> None:
    heartbeat = getattr(instance, "heartbeat", None)
    if heartbeat is not None:
        heartbeat.stop()


def live_instances(instance: Instance) -> list[dict[str, Any]]:
    now = time.time()
    out = []
    for name, record in instance.registry.list(INSTANCES).items():
        record = dict(record)
        record.setdefault("name", name)
        record["age"] = round(now - float(record.get("last_seen", now)), 1)
        out.append(record)
    return out
