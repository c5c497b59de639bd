"""Gateway tokens: created with a high-entropy secret shown once, kept as its sha256,
checked in constant time, scoped to one dataset, rate limited by a token bucket in memory."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mao.errors import AlreadyExists, Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized
from mao.gateway.models import GatewayToken
from mao.store.models import utcnow
from mao.store.store import Store, as_utc
from mao.validation import check_name

SECRET_PREFIX = "mgw_"
"""Every gateway secret starts with it, so the operator API can refuse one on sight."""

Scope = Literal["read", "write"]
SCOPES = ("read", "write")
DEFAULT_RATE = "60/min"
MAX_RATE = 100_000

_RATE_RE = re.compile(r"^\s*(\d{1,6})\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_WINDOWS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_UNITS = {1: "s", 60: "min", 3600: "h"}


def parse_rate(text: str) -> tuple[int, int]:
    """``60/min`` → (60, 60): requests per window seconds. Units: s, min, h."""
    match = _RATE_RE.fullmatch(text or "")
    if not match or not 1 <= int(match.group(1)) <= MAX_RATE:
        raise InvalidInput(f"invalid rate {text!r}: use N/s, N/min or N/h with N from 1 to {MAX_RATE}, e.g. 60/min")
    return int(match.group(1)), _WINDOWS[match.group(2)]


def format_rate(limit: int, window: int) -> str:
    return f"{limit}/{_UNITS.get(window, f'{window}s')}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What a request's token allows; never the secret."""

    name: str
    dataset: str
    scope: str
    rate_limit: int
    rate_window: int
    created_at: datetime | None
    revoked_at: datetime | None

    @property
    def rate(self) -> str:
        return format_rate(self.rate_limit, self.rate_window)

    def public(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat().replace("+00:00", "Z") if value else None

        return {
            "name": self.name,
            "dataset": self.dataset,
            "scope": self.scope,
            "rate": self.rate,
            "created_at": iso(self.created_at),
            "revoked": self.revoked_at is not None,
            "revoked_at": iso(self.revoked_at),
        }

    def allows(self, dataset: str, scope: Scope) -> bool:
        """``write`` allows reading its dataset too."""
        return self.dataset == dataset and (self.scope == scope or self.scope == "write")


def _info(row: GatewayToken) -> TokenInfo:
    return TokenInfo(
        name=row.name,
        dataset=row.dataset,
        scope=row.scope,
        rate_limit=row.rate_limit,
        rate_window=row.rate_window,
        created_at=as_utc(row.created_at),
        revoked_at=as_utc(row.revoked_at),
    )


class TokenStore:
    """Gateway tokens in the instance-local store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, name: str, dataset: str, scope: str, rate: str = DEFAULT_RATE) -> tuple[TokenInfo, str]:
        """A new token; returns it and its secret (the only time the secret exists outside the caller)."""
        check_name(name, "token name")
        check_name(dataset, "dataset name")
        if scope not in SCOPES:
            raise InvalidInput(f"invalid scope {scope!r}: use read or write")
        limit, window = parse_rate(rate)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        row = GatewayToken(
            name=name,
            dataset=dataset,
            scope=scope,
            rate_limit=limit,
            rate_window=window,
            secret_hash=hash_secret(secret),
            created_at=utcnow(),
        )
        try:
            with self.store.session() as s:
                if s.scalar(select(GatewayToken.id).where(GatewayToken.name == name)) is not None:
                    raise AlreadyExists(
                        f"a gateway token named {name!r} exists (revoked ones too keep their name, "
                        "as their records carry it): choose another name"
                    )
                s.add(row)
                s.flush()
                info = _info(row)
        except IntegrityError:
            raise AlreadyExists(f"a gateway token named {name!r} exists: choose another name") from None
        return info, secret

    def list(self) -> list[TokenInfo]:
        with self.store.session() as s:
            return [_info(row) for row in s.scalars(select(GatewayToken).order_by(GatewayToken.name))]

    def get(self, name: str) -> TokenInfo:
        with self.store.session() as s:
            row = s.scalar(select(GatewayToken).where(GatewayToken.name == name))
            if row is None:
                raise NotFound(f"no gateway token {name!r}; `maoctl gateway token list` shows them")
            return _info(row)

    def revoke(self, name: str) -> TokenInfo:
        """Revoke for good (the row stays, so the name is not given out again)."""
        return self.revoke_once(name)[0]

    def revoke_once(self, name: str) -> tuple[TokenInfo, bool]:
        """:meth:`revoke`, saying whether this call revoked it (False: it was revoked before,
        and nothing changed)."""
        check_name(name, "token name")
        with self.store.session() as s:
            row = s.scalar(select(GatewayToken).where(GatewayToken.name == name))
            if row is None:
                raise NotFound(f"no gateway token {name!r}; `maoctl gateway token list` shows them")
            revoked_now = row.revoked_at is None
            if revoked_now:
                row.revoked_at = utcnow()
            return _info(row), revoked_now

    def authenticate(self, secret: str) -> TokenInfo:
        """The live token whose secret this is; Unauthorized otherwise (unknown and revoked alike)."""
        if not secret or not secret.startswith(SECRET_PREFIX) or len(secret) > 256:
            raise Unauthorized(
                "this route needs a gateway token: send 'Authorization: Bearer <token>' "
                "(created with `maoctl gateway token create`; the operator's API token is not one)"
            )
        digest = hash_secret(secret)
        with self.store.session() as s:
            row = s.scalar(select(GatewayToken).where(GatewayToken.secret_hash == digest))
            found = _info(row) if row is not None else None
            stored = row.secret_hash if row is not None else "0" * 64
        if found is None or not hmac.compare_digest(stored, digest) or found.revoked_at is not None:
            raise Unauthorized("unknown or revoked gateway token")
        return found


def require(token: TokenInfo, dataset: str, scope: Scope) -> None:
    if not token.allows(dataset, scope):
        raise Forbidden(
            f"gateway token {token.name!r} is a {token.scope} token for dataset {token.dataset!r}: "
            f"it cannot {scope} dataset {dataset!r}"
        )


class RateLimiter:
    """One token bucket per gateway token, in memory: ``limit`` requests at once, refilled
    at ``limit / window`` per second."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def take(self, token: TokenInfo) -> None:
        """Spend one request of ``token``'s bucket; RateLimited with Retry-After when it is empty."""
        capacity = float(token.rate_limit)
        per_second = token.rate_limit / token.rate_window
        now = self._clock()
        with self._lock:
            level, last = self._buckets.get(token.name, (capacity, now))
            level = min(capacity, level + (now - last) * per_second)
            if level < 1.0:
                self._buckets[token.name] = (level, now)
                retry = max(1, math.ceil((1.0 - level) / per_second))
                raise RateLimited(
                    f"gateway token {token.name!r} is over its rate ({token.rate}): try again in {retry}s",
                    retry,
                )
            self._buckets[token.name] = (level - 1.0, now)
