"""Live membership: each serving instance keeps ``instances/<name>`` alive with a lease."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mao.errors import MAOError
from mao.events import InstanceLost
from mao.registry.base import KeepAlive, Lease
from mao.registry.keys import INSTANCES, instance_key

if TYPE_CHECKING:
    from mao.events import EventBus
    from mao.registry import Registry
    from mao.registry.etcd import EtcdRegistry

log = logging.getLogger(__name__)


class Heartbeat:
    """Puts this instance's record under a lease and keeps both alive (a :class:`KeepAlive`
    loop). A lease that lapsed (e.g. etcd was unreachable for longer than the TTL) is
    re-granted and the record put again."""

    name = "heartbeat"

    def __init__(
        self,
        registry: Registry,
        events: EventBus,
        *,
        instance_name: str,
        ttl: int,
        record: Callable[[], dict[str, Any]],
    ) -> None:
        """``record``: what this instance announces (its ``last_seen`` is added at each put)."""
        self.registry = registry
        self.events = events
        self.instance_name = instance_name
        self.ttl = ttl
        self._record = record
        self._keepalive = KeepAlive(
            registry,
            ttl=self.ttl,
            renew=self._put,
            each_round=self._round,
            interval=max(self.ttl / 3, 1),
        )
        self._keepalive.name = "heartbeat"
        self._live: set[str] | None = None

    @property
    def _lease(self) -> Lease | None:
        return self._keepalive.lease

    def record(self) -> dict[str, Any]:
        return {**self._record(), "last_seen": time.time()}

    def _put(self, lease: Lease) -> None:
        self.registry.put(instance_key(self.instance_name), self.record(), lease)

    def _round(self, lease: Lease) -> None:
        self._put(lease)
        self.look_for_lost()

    def look_for_lost(self) -> list[str]:
        """Compare the live instances with the last listing: each one gone since is published
        as ``instance.lost`` (and returned)."""
        try:
            live = set(self.registry.list(INSTANCES)) - {self.instance_name}
        except MAOError as exc:
            log.debug("heartbeat: cannot list the live instances: %s", exc.message)
            return []
        lost = sorted(self._live - live) if self._live is not None else []
        self._live = live
        for name in lost:
            log.warning("instance %s is no longer live (its registry lease expired or was withdrawn)", name)
            self.events.publish(InstanceLost(instance=name))
        return lost

    def beat(self) -> None:
        self._keepalive.beat()

    def start(self) -> None:
        try:
            self.beat()
        finally:
            self._keepalive.start()

    def stop(self) -> None:
        self._keepalive.stop()
        if self._lease is not None:
            try:
                self.registry.revoke(self._lease)
            except MAOError as exc:
                log.warning("could not withdraw this instance from the registry: %s", exc.message)


def live_instances(registry: Registry) -> list[dict[str, Any]]:
    """The live instances' records in ``registry``, each with its name and age (seconds)."""
    now = time.time()
    out = []
    for name, record in registry.list(INSTANCES).items():
        record = dict(record)
        record.setdefault("name", name)
        record["age"] = round(now - float(record.get("last_seen", now)), 1)
        out.append(record)
    return out


# operator tools: etcd membership ---------------------------------------------------


def _etcd(registry: Registry) -> EtcdRegistry:
    from mao.errors import Conflict
    from mao.observability import unwrap
    from mao.registry.etcd import EtcdRegistry

    etcd = unwrap(registry)
    if not isinstance(etcd, EtcdRegistry):
        raise Conflict(
            "this instance runs standalone (registry_backend=local): federation members are etcd members; "
            "configure registry_backend: etcd and etcd_endpoints first"
        )
    return etcd


def _member(raw: dict[str, Any]) -> dict[str, Any]:
    started = bool(raw.get("name")) and bool(raw.get("clientURLs"))
    return {
        "id": str(raw.get("ID", "")),
        "id_hex": format(int(raw.get("ID", 0)), "x"),
        "name": raw.get("name", ""),
        "status": "started" if started else "unstarted",
        "peer_urls": raw.get("peerURLs", []),
        "client_urls": raw.get("clientURLs", []),
        "learner": bool(raw.get("isLearner", False)),
    }


def members(registry: Registry) -> list[dict[str, Any]]:
    """The etcd cluster's members (a Conflict when ``registry`` is not etcd)."""
    return [_member(m) for m in _etcd(registry).members()]


def initial_cluster(member_list: list[dict[str, Any]], new_name: str, new_id: str) -> str:
    parts: list[str] = []
    for m in member_list:
        name = new_name if m["id"] == new_id else m["name"]
        if not name:
            continue
        parts.extend(f"{name}={url}" for url in m["peer_urls"])
    return ",".join(sorted(parts))


PEER_URL_PATTERN = r"^https?://[A-Za-z0-9.\-\[\]:]+:[0-9]+$"
"""An etcd peer URL: http(s), a host or address, a port."""


def add_member(registry: Registry, name: str, peer_url: str) -> dict[str, Any]:
    """Add a member through etcd's own member API; return what the joining instance needs."""
    from mao.errors import AlreadyExists, InvalidInput
    from mao.validation import check_name

    check_name(name, "instance name")
    if not re.fullmatch(PEER_URL_PATTERN, peer_url):
        raise InvalidInput(f"invalid peer URL {peer_url!r}: use http://<new-instance-ip>:2380")
    etcd = _etcd(registry)
    current = members(etcd)
    for m in current:
        if m["name"] == name:
            raise AlreadyExists(f"etcd already has a member named {name!r}")
        if peer_url in m["peer_urls"]:
            raise AlreadyExists(f"etcd already has a member with peer URL {peer_url}")
    added = _member(etcd.member_add([peer_url])["member"])
    cluster = initial_cluster(members(etcd), name, added["id"])
    return {
        "member": {**added, "name": name},
        "env": {
            "ETCD_NAME": name,
            "ETCD_INITIAL_CLUSTER": cluster,
            "ETCD_INITIAL_ADVERTISE_PEER_URLS": peer_url,
            "ETCD_INITIAL_CLUSTER_STATE": "existing",
        },
    }


def remove_member(registry: Registry, member: str) -> dict[str, Any]:
    """Remove a member given by name, decimal id or hex id."""
    from mao.errors import NotFound

    etcd = _etcd(registry)
    for m in members(etcd):
        if member in (m["name"], m["id"], m["id_hex"]):
            etcd.member_remove(int(m["id"]))
            return m
    raise NotFound(f"no etcd member {member!r}; `maoctl federation member list` shows them")
