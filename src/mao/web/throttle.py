"""Wrong tokens slow their sender down: a leaky bucket of failures per client address.

Every wrong token (a Bearer header, the dashboard's login form) adds one to its client's
bucket, which leaks :data:`FORGIVEN_PER_MINUTE` a minute. A client whose bucket holds
:data:`BURST` is refused with 429 and ``Retry-After`` (the seconds until it may try once
more) before its token is even compared, the right one included: a lock that let the right
token through would tell a guesser which one it is. Once the wrong tokens stop, the lock
lasts at most 60 / :data:`FORGIVEN_PER_MINUTE` seconds; a steady guesser gets that many
guesses a minute. Requests without a token are not counted.

Clients are told apart by address (an IPv6 client by its /64, which one machine usually
holds whole). The table keeps at most :data:`MAX_CLIENTS` buckets; beyond, the least
recently failed one is dropped first, so no flood of addresses can exhaust memory.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from mao.errors import RateLimited

BURST = 10
"""Wrong tokens a client may send at once before it has to wait."""

FORGIVEN_PER_MINUTE = 10.0
"""Wrong tokens forgotten per minute: the steady rate a guesser is held to."""

MAX_CLIENTS = 10_000
"""Clients with recent failures that the table keeps at most."""

STATE_KEY = "auth_throttle"
"""The attribute of ``app.state`` that holds the app's :class:`FailureThrottle`."""


@dataclass
class _Bucket:
    level: float
    at: float


class FailureThrottle:
    """Failed authentications per client (see the module's text). Thread-safe."""

    def __init__(
        self,
        *,
        burst: int = BURST,
        per_minute: float = FORGIVEN_PER_MINUTE,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, bucket: _Bucket, now: float) -> float:
        return max(0.0, bucket.level - (now - bucket.at) * self.rate)

    def check(self, client: str) -> None:
        """Raise RateLimited when ``client`` has to wait before its next try."""
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                return
            excess = self._level(bucket, self.clock()) - (self.burst - 1)
        if excess > 0:
            wait = max(1, math.ceil(excess / self.rate))
            raise RateLimited(f"too many wrong tokens from this address: try again in {wait} s", retry_after=wait)

    def failed(self, client: str) -> None:
        """Count a wrong token from ``client``."""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.pop(client, None)
            level = self._level(bucket, now) if bucket is not None else 0.0
            self._buckets[client] = _Bucket(level + 1, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            self._drop_drained(now)

    def _drop_drained(self, now: float) -> None:
        """Forget the oldest buckets that leaked empty (a few per call: the table stays small)."""
        for _ in range(4):
            client, bucket = next(iter(self._buckets.items()))
            if self._level(bucket, now) > 0 or len(self._buckets) == 1:
                return
            del self._buckets[client]


def client_of(request: Request) -> str:
    """The key of a request's client: its address, an IPv6 one cut to its /64."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def throttle_of(request: Request) -> FailureThrottle | None:
    return getattr(request.app.state, STATE_KEY, None)
