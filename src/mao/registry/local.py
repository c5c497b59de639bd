"""The standalone registry: rows in the instance's own SQL store, with expiring leases.

Other processes may write the same store (a local ``maoctl`` command beside ``maoctl
serve``, several instances on one PostgreSQL database), so the read cache cannot trust
its own writes alone: every write of a catalog key also changes the row
``_meta/generation`` in the same transaction, and the cache is checked against that row
every ``max_stale / 4`` seconds (one primary-key read) and loaded again when it changed.
A write of this process empties the cache at once (read-your-writes).
"""

from __future__ import annotations

import builtins
import json
import logging
import uuid
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mao.errors import MAOError, RegistryUnavailable, StoreError
from mao.loop import LoopService
from mao.registry.base import Lease, Registry
from mao.registry.cache import CACHED_PREFIXES, MISS, CachedValues, ReadCache, decode
from mao.registry.keys import LOCAL_GENERATION, LOCAL_LEASES, LOCAL_META
from mao.store.models import RegistryEntry, utcnow
from mao.store.store import Store

log = logging.getLogger(__name__)

_LEASES, _META, GENERATION = LOCAL_LEASES, LOCAL_META, LOCAL_GENERATION


class LocalRegistry(Registry):
    """``cache_max_stale`` > 0 keeps the catalog in memory once :meth:`start_cache` is called."""

    backend = "local"

    def __init__(self, store: Store, *, cache_max_stale: float = 0.0) -> None:
        self.store = store
        self.cache = ReadCache(cache_max_stale) if cache_max_stale > 0 else None
        self._checker: _GenerationCheck | None = None
        self._generation: str | None = None

    def _session(self) -> AbstractContextManager[Session]:
        url = self.store.engine.url.render_as_string(hide_password=True)
        return self.store.session(error=RegistryUnavailable, where=f"the local registry (store {url})")

    @staticmethod
    def _live() -> ColumnElement[bool]:
        return or_(RegistryEntry.expires_at.is_(None), RegistryEntry.expires_at > utcnow())

    def _purge(self, s: Session) -> None:
        s.execute(delete(RegistryEntry).where(RegistryEntry.expires_at <= utcnow()))

    def get(self, key: str) -> dict[str, Any] | None:
        if self.cache is not None:
            value: dict[str, Any] | None = self.cache.get(key)
            if value is not MISS:
                return value
        return self.get_latest(key)

    def get_latest(self, key: str) -> dict[str, Any] | None:
        with self._session() as s:
            row = s.scalar(select(RegistryEntry).where(RegistryEntry.key == key, self._live()))
            return decode(row.value) if row else None

    def _expiry(self, s: Session, lease: Lease | None) -> datetime | None:
        if lease is None:
            return None
        row = s.scalar(select(RegistryEntry).where(RegistryEntry.key == _LEASES + lease.id, self._live()))
        if row is None:
            raise RegistryUnavailable(f"lease {lease.id} has expired")
        return row.expires_at

    def put(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> None:
        with self._session() as s:
            expires = self._expiry(s, lease)
            row = s.get(RegistryEntry, key)
            if row is None:
                s.add(RegistryEntry(key=key, value=json.dumps(value), expires_at=expires, owner=lease and lease.id))
            else:
                row.value, row.expires_at, row.owner = json.dumps(value), expires, None if lease is None else lease.id
            self._touch(s, [key])
        self._written([key])

    def create(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> bool:
        try:
            with self._session() as s:
                self._purge(s)
                s.flush()
                expires = self._expiry(s, lease)
                s.add(RegistryEntry(key=key, value=json.dumps(value), expires_at=expires, owner=lease and lease.id))
                s.flush()
                self._touch(s, [key])
        except IntegrityError:
            return False
        self._written([key])
        return True

    def delete(self, key: str) -> bool:
        with self._session() as s:
            deleted = _rowcount(s.execute(delete(RegistryEntry).where(RegistryEntry.key == key, self._live()))) > 0
            if deleted:
                self._touch(s, [key])
        if deleted:
            self._written([key])
        return deleted

    def list(self, prefix: str) -> dict[str, dict[str, Any]]:
        if self.cache is not None:
            values = self.cache.list(prefix)
            if values is not None:
                return values
        with self._session() as s:
            rows = s.scalars(
                select(RegistryEntry)
                .where(
                    RegistryEntry.key.startswith(prefix, autoescape=True),
                    ~RegistryEntry.key.startswith(_LEASES, autoescape=True),  # bookkeeping, not keys
                    ~RegistryEntry.key.startswith(_META, autoescape=True),
                    self._live(),
                )
                .order_by(RegistryEntry.key)
            )
            return {r.key[len(prefix) :]: decode(r.value) for r in rows}

    def grant(self, ttl: int) -> Lease:
        lease = Lease(uuid.uuid4().hex, ttl)
        with self._session() as s:
            s.add(RegistryEntry(key=_LEASES + lease.id, value="{}", expires_at=utcnow() + timedelta(seconds=ttl)))
        return lease

    def refresh(self, lease: Lease) -> bool:
        with self._session() as s:
            until = utcnow() + timedelta(seconds=lease.ttl)
            alive = _rowcount(
                s.execute(
                    update(RegistryEntry)
                    .where(RegistryEntry.key == _LEASES + lease.id, self._live())
                    .values(expires_at=until)
                )
            )
            if alive:
                s.execute(update(RegistryEntry).where(RegistryEntry.owner == lease.id).values(expires_at=until))
            return bool(alive)

    def revoke(self, lease: Lease) -> None:
        with self._session() as s:
            held = [*s.scalars(select(RegistryEntry.key).where(RegistryEntry.owner == lease.id))]
            s.execute(
                delete(RegistryEntry).where(
                    or_(RegistryEntry.owner == lease.id, RegistryEntry.key == _LEASES + lease.id)
                )
            )
            self._touch(s, held)
        self._written(held)

    def ping(self) -> dict[str, Any]:
        try:
            self.store.ping()
        except StoreError as exc:
            raise RegistryUnavailable(exc.message) from exc
        return {"backend": self.backend, "store": self.store.engine.url.render_as_string(hide_password=True)}

    # the read cache --------------------------------------------------------------------

    def _touch(self, s: Session, keys: builtins.list[str]) -> None:
        """In a write's transaction: a new generation if a catalog key is among ``keys``
        (whether or not this process keeps a cache: others may)."""
        if not any(k.startswith(CACHED_PREFIXES) for k in keys):
            return
        token = uuid.uuid4().hex
        if _rowcount(s.execute(update(RegistryEntry).where(RegistryEntry.key == GENERATION).values(value=token))):
            return
        try:
            with s.begin_nested():
                s.add(RegistryEntry(key=GENERATION, value=token))
        except IntegrityError:  # another writer made the row first
            s.execute(update(RegistryEntry).where(RegistryEntry.key == GENERATION).values(value=token))

    def _written(self, keys: builtins.list[str]) -> None:
        """After a write's commit: this process's next read must see it."""
        if self.cache is None or not any(self.cache.root(k) is not None for k in keys):
            return
        self.cache.invalidate()
        if self._checker is not None:
            self._checker.wake()

    def start_cache(self) -> None:
        if self.cache is None or self._checker is not None:
            return
        self._checker = _GenerationCheck(self, self.cache)
        self._checker.start()

    def cached(self, prefix: str) -> CachedValues | None:
        return None if self.cache is None else self.cache.view(prefix)

    def check_cache(self) -> bool:
        """One check of the cache against the store (loading it again if the generation
        changed); True if the cache may be used now."""
        cache = self.cache
        if cache is None:
            return False
        began = cache.clock()
        before = cache.snapshot()
        with self._session() as s:
            generation = s.scalar(select(RegistryEntry.value).where(RegistryEntry.key == GENERATION))
            if cache.loaded and not cache.lapsed() and generation == self._generation:
                return cache.confirm(before, began)
            # the generation first: a write committed after it makes the next check load again
            now = utcnow()
            rows = s.execute(
                select(RegistryEntry.key, RegistryEntry.value, RegistryEntry.expires_at).where(
                    or_(*(RegistryEntry.key.startswith(p, autoescape=True) for p in cache.prefixes)),
                    self._live(),
                )
            ).all()
        expiries = [_aware(r.expires_at) for r in rows if r.expires_at is not None]
        lapses_in = (min(expiries) - now).total_seconds() if expiries else None
        loaded = cache.load({r.key: r.value for r in rows}, lapses_in=lapses_in, if_unchanged=before)
        if loaded is None:
            return False
        self._generation = generation
        return cache.confirm(loaded, began)

    def close(self) -> None:
        if self._checker is not None:
            self._checker.stop()
            self._checker = None


def _rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched (``Session.execute`` is typed as a plain Result)."""
    return cast("CursorResult[Any]", result).rowcount


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _GenerationCheck(LoopService):
    name = "registry-cache-check"

    def __init__(self, registry: LocalRegistry, cache: ReadCache) -> None:
        super().__init__(cache.interval, run_first=True)
        self.registry = registry

    def run_once(self) -> None:
        self.registry.check_cache()

    def on_error(self, exc: Exception) -> None:  # the store away: reads go to it and say so
        log.debug("registry cache check failed: %s", exc.message if isinstance(exc, MAOError) else exc)
