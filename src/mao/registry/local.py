"""The standalone registry: rows in the instance's own SQL store, with expiring leases."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from mao.errors import RegistryUnavailable, StoreError
from mao.registry.base import Lease, Registry
from mao.store.models import RegistryEntry, utcnow
from mao.store.store import Store

_LEASES = "_leases/"


class LocalRegistry(Registry):
    backend = "local"

    def __init__(self, store: Store) -> None:
        self.store = store

    def _session(self):
        url = self.store.engine.url.render_as_string(hide_password=True)
        return self.store.session(error=RegistryUnavailable, where=f"the local registry (store {url})")

    @staticmethod
    def _live():
        return or_(RegistryEntry.expires_at.is_(None), RegistryEntry.expires_at > utcnow())

    def _purge(self, s) -> None:
        s.execute(delete(RegistryEntry).where(RegistryEntry.expires_at <= utcnow()))

    def get(self, key: str) -> dict[str, Any] | None:
        with self._session() as s:
            row = s.scalar(select(RegistryEntry).where(RegistryEntry.key == key, self._live()))
            return json.loads(row.value) if row else None

    def _expiry(self, s, lease: Lease | None):
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
                row.value, row.expires_at, row.owner = json.dumps(value), expires, lease and lease.id

    def create(self, key: str, value: dict[str, Any], lease: Lease | None = None) -> bool:
        try:
            with self._session() as s:
                self._purge(s)
                s.flush()
                expires = self._expiry(s, lease)
                s.add(RegistryEntry(key=key, value=json.dumps(value), expires_at=expires, owner=lease and lease.id))
                s.flush()
            return True
        except IntegrityError:
            return False

    def delete(self, key: str) -> bool:
        with self._session() as s:
            return s.execute(delete(RegistryEntry).where(RegistryEntry.key == key, self._live())).rowcount > 0

    def list(self, prefix: str) -> dict[str, dict[str, Any]]:
        with self._session() as s:
            rows = s.scalars(
                select(RegistryEntry)
                .where(
                    RegistryEntry.key.startswith(prefix, autoescape=True),
                    ~RegistryEntry.key.startswith(_LEASES, autoescape=True),  # bookkeeping, not keys
                    self._live(),
                )
                .order_by(RegistryEntry.key)
            )
            return {r.key[len(prefix) :]: json.loads(r.value) for r in rows}

    def grant(self, ttl: int) -> Lease:
        lease = Lease(uuid.uuid4().hex, ttl)
        with self._session() as s:
            s.add(RegistryEntry(key=_LEASES + lease.id, value="{}", expires_at=utcnow() + timedelta(seconds=ttl)))
        return lease

    def refresh(self, lease: Lease) -> bool:
        with self._session() as s:
            until = utcnow() + timedelta(seconds=lease.ttl)
            alive = s.execute(
                update(RegistryEntry)
                .where(RegistryEntry.key == _LEASES + lease.id, self._live())
                .values(expires_at=until)
            ).rowcount
            if alive:
                s.execute(update(RegistryEntry).where(RegistryEntry.owner == lease.id).values(expires_at=until))
            return bool(alive)

    def revoke(self, lease: Lease) -> None:
        with self._session() as s:
            s.execute(
                delete(RegistryEntry).where(
                    or_(RegistryEntry.owner == lease.id, RegistryEntry.key == _LEASES + lease.id)
                )
            )

    def ping(self) -> dict[str, Any]:
        try:
            self.store.ping()
        except StoreError as exc:
            raise RegistryUnavailable(exc.message) from exc
        return {"backend": self.backend, "store": self.store.engine.url.render_as_string(hide_password=True)}
