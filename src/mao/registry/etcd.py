"""The federation registry on etcd v3, through its HTTP/JSON gateway (``etcd3gw``).

Several endpoints may be given; a call that cannot reach one member moves on to the
next, so the registry keeps working while a minority of the cluster is down. When no call
succeeds, the error tells "no member reachable" from "members reachable but no quorum".
"""

from __future__ import annotations

import base64
import builtins
import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from etcd3gw import exceptions as etcd_exc
from etcd3gw.client import Etcd3Client
from etcd3gw.lease import Lease as EtcdLease
from requests.adapters import HTTPAdapter

from mao.errors import InvalidInput, RegistryUnavailable, foreign
from mao.registry.base import Lease, Registry
from mao.registry.cache import MISS, CachedValues, ReadCache, decode
from mao.registry.etcd_auth import AuthSession, EtcdCredentials
from mao.registry.etcd_cache import EtcdCacheFollower

T = TypeVar("T")

_RETRYABLE = (
    etcd_exc.ConnectionFailedError,
    etcd_exc.ConnectionTimeoutError,
    etcd_exc.InternalServerError,
    etcd_exc.ApiVersionDiscoveryFailedError,
)


_UNREACHABLE = (etcd_exc.ConnectionFailedError, etcd_exc.ConnectionTimeoutError)


POOL_SIZE = 64
"""HTTP connections kept open to each etcd member: as many as threads may call the registry
at once (the API's worker threads, anyio's default of 40, plus the runner, the scheduler and
the lease loops). Fewer makes requests discard connections under load. The registry's GET
routes take no worker thread while the catalog cache is current; the cache's watch has a
connection of its own."""


def _retryable(exc: Exception) -> bool:
    """Connection failures and the answers of a member without a leader: try elsewhere."""
    if isinstance(exc, (*_RETRYABLE, requests.RequestException)):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("leader", "unavailable", "timed out", "timeout"))


def make_session(pool_size: int = POOL_SIZE, credentials: EtcdCredentials | None = None) -> requests.Session:
    """A requests session whose connection pool holds ``pool_size`` connections per member,
    authenticating as ``credentials`` when given (:mod:`mao.registry.etcd_auth`)."""
    session = AuthSession(credentials)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _reason(exc: Exception) -> str:
    return "timed out" if isinstance(exc, requests.Timeout) else exc.__class__.__name__


def make_clients(
    endpoints: list[str],
    timeout: float,
    pool_size: int = POOL_SIZE,
    credentials: EtcdCredentials | None = None,
) -> list[Etcd3Client]:
    clients = []
    for endpoint in endpoints:
        parts = urlsplit(endpoint)
        if not parts.hostname or not parts.port:
            raise InvalidInput(f"etcd endpoint {endpoint!r} must look like http://HOST:PORT")
        clients.append(
            Etcd3Client(
                host=parts.hostname,
                port=parts.port,
                protocol=parts.scheme,
                timeout=timeout,
                api_path="/v3/",
                session=make_session(pool_size, credentials),
            )
        )
    return clients


class EtcdRegistry(Registry):
    """``cache_max_stale`` > 0 keeps the catalog (tools, datasets, pipelines) in memory once
    :meth:`start_cache` is called, current through a watch (see :mod:`mao.registry.etcd_cache`):
    reads of it are never older than that many seconds, and see this process's own writes."""

    backend = "etcd"

    def __init__(self, clients: list[Etcd3Client], prefix: str = "/mao/", *, cache_max_stale: float = 0.0) -> None:
        if not clients:
            raise InvalidInput("give at least one etcd endpoint")
        self.clients = clients
        self.prefix = prefix
        self._current = 0
        self._lock = threading.Lock()
        self.round_pauses: tuple[float, ...] = (0.5, 1.0, 0.0)
        self.health_timeout = 2.0
        self.cache = ReadCache(cache_max_stale) if cache_max_stale > 0 else None
        self._follower: EtcdCacheFollower | None = None
        self._cached_leases: set[str] = set()

    @property
    def endpoints(self) -> list[str]:
        return [c.base_url for c in self.clients]

    @property
    def current(self) -> int:
        """The index of the member calls go to first."""
        return self._current

    def next_member(self, failed: Etcd3Client) -> None:
        """Calls go to the member after ``failed`` from now on (unless another call moved on already)."""
        with self._lock:
            if self.clients[self._current] is failed:
                self._current = (self._current + 1) % len(self.clients)

    # the read cache ------------------------------------------------------------------

    def start_cache(self) -> None:
        if self.cache is None or self._follower is not None:
            return
        self._follower = EtcdCacheFollower(self, self.cache).start()

    def cached(self, prefix: str) -> CachedValues | None:
        return None if self.cache is None else self.cache.view(prefix)

    def on_change(self, callback: Callable[[str, bool], None]) -> bool:
        """Changes seen by the cache's watch (on the whole prefix): only with a cache."""
        if self.cache is None:
            return False
        self.cache.listen(callback)
        return True

    def _expect(self, key: str, answer: dict[str, Any]) -> None:
        """After a write of ``key``: the cache is not used until it holds the write."""
        if self.cache is not None and self.cache.root(key) is not None:
            self.cache.expect(int(answer.get("header", {}).get("revision", 0)))

    def _call(self, fn: Callable[[Etcd3Client], T]) -> T:
        """Run ``fn`` on the current member; on a connection failure try the others.

        When every member fails but some answered (a leader election in progress, say),
        wait a little and go round once or twice more before giving up; when none
        answered at all, give up at once.
        """
        errors: list[str] = []
        for pause in self.round_pauses:
            answered = False
            with self._lock:
                start = self._current
            for i in range(len(self.clients)):
                index = (start + i) % len(self.clients)
                client = self.clients[index]
                try:
                    result = fn(client)
                except (etcd_exc.Etcd3Exception, requests.RequestException) as exc:
                    if not _retryable(exc):
                        raise foreign("etcd", f"etcd at {client.base_url} refused the request", exc) from exc
                    errors.append(f"{client.base_url}: {exc.__class__.__name__}")
                    answered = answered or not isinstance(exc, _UNREACHABLE)
                    continue
                if index != start:
                    with self._lock:
                        self._current = index
                return result
            if not answered:
                break
            if pause:
                time.sleep(pause)
        raise self._unavailable("; ".join(errors))

    # diagnosis -------------------------------------------------------------------

    def probe_timeout(self, client: Etcd3Client) -> float:
        return min(self.health_timeout, float(client.timeout or self.health_timeout))

    def _reachable(self) -> list[Etcd3Client]:
        """Members that answer a status request (which each member answers alone, without quorum)."""
        out = []
        for client in self.clients:
            try:
                client.session.post(
                    client.get_url("/maintenance/status"), json={}, timeout=self.probe_timeout(client)
                ).raise_for_status()
            except requests.RequestException:
                continue
            out.append(client)
        return out

    def _unavailable(self, errors: str, reachable: list[Etcd3Client] | None = None) -> RegistryUnavailable:
        if reachable is None:
            reachable = self._reachable()
        if not reachable:
            return RegistryUnavailable(
                "no etcd member is reachable at " + ", ".join(self.endpoints) + f" ({errors})",
                details={"endpoints": self.endpoints, "reachable": [], "reason": "unreachable"},
            )
        urls = [c.base_url for c in reachable]
        return RegistryUnavailable(
            f"etcd members are reachable ({', '.join(urls)} of {len(self.clients)} endpoints) but the cluster has "
            f"no quorum: no leader answered ({errors})",
            details={"endpoints": self.endpoints, "reachable": urls, "reason": "no_quorum"},
        )

    def _linearizable_read(self, client: Etcd3Client) -> None:
        """A range read that only the leader can serve (etcd's default, not ``serializable``)."""
        key = base64.b64encode(self._key("health").encode()).decode()
        response = client.session.post(
            client.get_url("/kv/range"), json={"key": key, "count_only": True}, timeout=self.probe_timeout(client)
        )
        response.raise_for_status()

    def _key(self, key: str) -> str:
        return self.prefix + key

    @staticmethod
    def _decode(raw: bytes | str) -> dict[str, Any]:
        return decode(raw.decode() if isinstance(raw, bytes) else raw)

    def get(self, key: str) -> dict[str, Any] | None:
        if self.cache is not None:
            value: dict[str, Any] | None = self.cache.get(key)
            if value is not MISS:
                return value
        return self.get_latest(key)

    def get_latest(self, key: str) -> dict[str, Any] | None:
        values = self._call(lambda c: c.get(self._key(key)))
        return self._decode(values[0]) if values else None

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(lambda c: c.post(c.get_url(path), json=body))

    def txn(self, body: dict[str, Any]) -> dict[str, Any]:
        """One etcd transaction, on whichever member answers."""
        return self._post("/kv/txn", body)

    def _put_body(self, key: str, value: dict[str, Any], lease: Lease | None) -> dict[str, Any]:
        body = {"key": _b64(self._key(key)), "value": _b64(json.dumps(value))}
        if lease is not None:
            body["lease"] = lease.id
            if self.cache is not None and self.cache.root(key) is not None:
                self._cached_leases.add(lease.id)
        return body

    def put(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> None:
        self._expect(key, self._post("/kv/put", self._put_body(key, value, lease)))

    def create(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> bool:
        txn = {
            "compare": [{"key": _b64(self._key(key)), "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
            "success": [{"request_put": self._put_body(key, value, lease)}],
        }
        answer = self.txn(txn)
        created = bool(answer.get("succeeded"))
        if created:
            self._expect(key, answer)
        return created

    def delete(self, key: str) -> bool:
        answer = self._post("/kv/deleterange", {"key": _b64(self._key(key))})
        deleted = int(answer.get("deleted", 0)) > 0
        if deleted:
            self._expect(key, answer)
        return deleted

    def list(self, prefix: str) -> dict[str, dict[str, Any]]:
        if self.cache is not None:
            values = self.cache.list(prefix)
            if values is not None:
                return values
        full = self._key(prefix)
        items = self._call(lambda c: c.get_prefix(full, sort_order="ascend", sort_target="key"))
        out = {}
        for raw, meta in items:
            key = meta["key"]
            key = key.decode() if isinstance(key, bytes) else key
            out[key[len(full) :]] = self._decode(raw)
        return out

    def grant(self, ttl: int) -> Lease:
        lease = self._call(lambda c: c.lease(ttl))
        return Lease(str(lease.id), ttl)

    def refresh(self, lease: Lease) -> bool:
        ttl: int = self._call(lambda c: EtcdLease(int(lease.id), client=c).refresh())
        return ttl > 0

    def revoke(self, lease: Lease) -> None:
        def _revoke(client: Etcd3Client) -> dict[str, Any]:
            try:
                reply: dict[str, Any] = client.post(client.get_url("/kv/lease/revoke"), json={"ID": int(lease.id)})
                return reply
            except etcd_exc.Etcd3Exception as exc:
                if "lease not found" not in str(exc.detail_text or ""):
                    raise  # an expired lease is already revoked: only other errors count
                return {}

        answer = self._call(_revoke)
        if lease.id in self._cached_leases:  # catalog keys held by the lease went with it
            self._cached_leases.discard(lease.id)
            if self.cache is not None and answer:
                self.cache.expect(int(answer.get("header", {}).get("revision", 0)))

    def ping(self) -> dict[str, Any]:
        """Facts of a member, once a linearizable read shows the cluster has a leader (quorum)."""
        errors: list[str] = []
        reachable: list[Etcd3Client] = []
        for client in self.clients:
            try:
                response = client.session.post(
                    client.get_url("/maintenance/status"), json={}, timeout=self.probe_timeout(client)
                )
                response.raise_for_status()
                status = response.json()
            except (requests.RequestException, ValueError) as exc:
                errors.append(f"{client.base_url}: {_reason(exc)}")
                continue
            reachable.append(client)
            try:
                self._linearizable_read(client)
            except requests.RequestException as exc:
                errors.append(f"{client.base_url}: linearizable read {_reason(exc)}")
                continue
            return {
                "backend": self.backend,
                "endpoints": self.endpoints,
                "version": status.get("version"),
                "leader": status.get("leader"),
            }
        raise self._unavailable("; ".join(errors), reachable)

    def members(self) -> builtins.list[dict[str, Any]]:
        return self._call(lambda c: c.members())

    def member_add(self, peer_urls: builtins.list[str]) -> dict[str, Any]:
        return self._call(lambda c: c.post(c.get_url("/cluster/member/add"), json={"peerURLs": peer_urls}))

    def member_remove(self, member_id: int) -> dict[str, Any]:
        return self._call(lambda c: c.post(c.get_url("/cluster/member/remove"), json={"ID": member_id}))

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        for client in self.clients:
            client.session.close()
