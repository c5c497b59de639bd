"""Last-known registry definitions, kept in the local store so runs go on while etcd is away."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from mao.offline.models import CachedDefinition
from mao.store.models import utcnow
from mao.store.store import Store


class DefinitionCache:
    """``(kind, name) → value`` as last read from the registry; written only when it changed.

    What this process last wrote is also kept in memory, so remembering an unchanged value
    (every listing of the registry does) costs no transaction.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._written: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def remember(self, kind: str, name: str, value: dict[str, Any]) -> None:
        with self._lock:
            if self._written.get((kind, name)) == value:
                return
        try:
            self._remember(kind, name, value)
        except IntegrityError:
            pass  # another thread cached it at the same moment
        with self._lock:
            self._written[(kind, name)] = copy.deepcopy(value)

    def _remember(self, kind: str, name: str, value: dict[str, Any]) -> None:
        with self.store.session() as s:
            row = s.get(CachedDefinition, (kind, name))
            if row is None:
                s.add(CachedDefinition(kind=kind, name=name, value=value, fetched_at=utcnow()))
            elif row.value != value:
                row.value = value
                row.fetched_at = utcnow()

    def remember_all(self, kind: str, values: Mapping[str, dict[str, Any]]) -> None:
        for name, value in values.items():
            self.remember(kind, name, value)

    def forget(self, kind: str, name: str) -> None:
        with self._lock:
            self._written.pop((kind, name), None)
        with self.store.session() as s:
            s.execute(delete(CachedDefinition).where(CachedDefinition.kind == kind, CachedDefinition.name == name))

    def get(self, kind: str, name: str) -> CachedDefinition | None:
        with self.store.session() as s:
            return s.get(CachedDefinition, (kind, name))

    def all(self, kind: str) -> dict[str, dict[str, Any]]:
        with self.store.session() as s:
            rows = s.scalars(
                select(CachedDefinition).where(CachedDefinition.kind == kind).order_by(CachedDefinition.name)
            )
            return {row.name: row.value for row in rows}
