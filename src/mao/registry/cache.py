"""An in-memory copy of the registry's catalog prefixes, so reads need no I/O.

A backend fills a :class:`ReadCache`, keeps it current (etcd: a watch; the local registry: a
generation check) and *verifies* it against the backend at least every ``max_stale / 4``
seconds. A read is answered from the cache only while the last successful verification
began at most ``max_stale`` seconds ago, the backend has not marked it stale (a broken
watch) and every write of this process is in it (read-your-writes); otherwise the backend
answers itself. So an answer from the cache is never older than ``max_stale`` seconds.
The bound is the promise, not monotonic reads: right after the cache becomes current again,
it may answer with a state (at most ``max_stale`` old) older than a read that the backend
answered a moment before, while the cache was not current.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mao.registry.keys import CATALOG
from mao.untrusted import text_depth

log = logging.getLogger(__name__)

CACHED_PREFIXES = CATALOG
"""The catalog: read on every API listing and every step; written rarely."""

MISS = object()
"""What :meth:`ReadCache.get` answers when the cache cannot answer."""

_versions = itertools.count(1)


REGISTRY_JSON_DEPTH = 500
"""Arrays and objects nested in a registry value at most: what the instances write is far
shallower (a tool's JSON is bounded to :data:`mao.untrusted.MAX_JSON_DEPTH` before it is
published, and readers check that bound again); a deeper value, written there by something
else, is not parsed (``json.loads`` recurses once per level)."""

UNREADABLE = "unreadable"
"""The one field of what :func:`decode` gives for a value it does not parse: why."""


def decode(text: str) -> dict[str, Any]:
    """A registry value: a JSON object (anything else is wrapped as ``{"value": ...}``, text
    that is not JSON as its raw text). A value nested deeper than :data:`REGISTRY_JSON_DEPTH`
    is ``{"unreadable": why}``, which no reader takes for a record of its kind."""
    try:
        text_depth(text, REGISTRY_JSON_DEPTH)
    except ValueError as exc:
        return {UNREADABLE: str(exc)}
    try:
        value = json.loads(text)
    except RecursionError:
        return {UNREADABLE: f"nested too deep to read ({REGISTRY_JSON_DEPTH} levels allowed)"}
    except ValueError:
        return {"value": text}
    return value if isinstance(value, dict) else {"value": value}


@dataclass(frozen=True)
class CachedValues:
    """The values under one cached prefix, as of ``version``.

    ``version`` changes whenever a value under the prefix changes (and at every reload), so
    whatever is derived from ``values`` may be kept until it does. ``values`` is shared:
    never mutate it.
    """

    version: int
    values: Mapping[str, dict[str, Any]]


@dataclass(frozen=True)
class Snapshot:
    """What a verification compares with the backend: the cache's revision and key counts."""

    changes: int
    revision: int
    counts: dict[str, int]


class ReadCache:
    """Keys under ``prefixes`` with their JSON text and decoded value; thread-safe."""

    def __init__(
        self,
        max_stale: float,
        prefixes: Iterable[str] = CACHED_PREFIXES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_stale <= 0:
            raise ValueError("max_stale must be positive")
        self.max_stale = max_stale
        self.prefixes = tuple(prefixes)
        self.clock = clock
        self._lock = threading.Lock()
        self._raw: dict[str, dict[str, str]] = {p: {} for p in self.prefixes}
        self._values: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in self.prefixes}
        self._versions: dict[str, int] = {p: next(_versions) for p in self.prefixes}
        self._changes = 0
        self._loaded = False
        self._verified_at: float | None = None
        self._stale_at: float | None = None
        self._revision = 0
        self._pending = 0
        self._deadline: float | None = None
        self._listeners: list[Callable[[str, bool], None]] = []

    def listen(self, callback: Callable[[str, bool], None]) -> None:
        """Call ``callback(key, deleted)`` for every change the watch sees, cached or not
        (a trigger hears of a merge lock's release this way)."""
        self._listeners.append(callback)

    def _tell(self, events: list[tuple[str, str | None, int]]) -> None:
        for key, text, _ in events:
            for callback in self._listeners:
                try:
                    callback(key, text is None)
                except Exception:  # a listener never breaks the watch
                    log.exception("registry watch listener failed on %s", key)

    @property
    def interval(self) -> float:
        """How often the backend verifies the cache."""
        return self.max_stale / 4

    def root(self, key: str) -> str | None:
        """The cached prefix ``key`` (or a listing prefix) falls under, if any."""
        for prefix in self.prefixes:
            if key.startswith(prefix):
                return prefix
        return None

    # state ---------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def revision(self) -> int:
        """Every change up to this backend revision is in the cache (etcd; 0 elsewhere)."""
        return self._revision

    def fresh(self) -> bool:
        """Whether reads may be answered from the cache now."""
        verified = self._verified_at
        return (
            self._loaded
            and verified is not None
            and self.clock() - verified <= self.max_stale
            and self._revision >= self._pending
            and not self.lapsed()
        )

    def lapsed(self) -> bool:
        """Whether an entry held by a lease has expired since the load (load again)."""
        return self._deadline is not None and self.clock() >= self._deadline

    def age(self) -> float | None:
        """Seconds since the last successful verification began (None: never, or marked stale)."""
        verified = self._verified_at
        return None if verified is None else self.clock() - verified

    # filling and keeping current --------------------------------------------------------

    def load(
        self,
        entries: Mapping[str, str],
        *,
        revision: int = 0,
        lapses_in: float | None = None,
        if_unchanged: Snapshot | None = None,
    ) -> Snapshot | None:
        """Replace everything with ``entries`` (key → JSON text), read at ``revision``.

        ``lapses_in``: seconds until the first entry held by a lease expires (the cache is
        not used past that). ``if_unchanged``: load only if nothing changed (no write of
        this process invalidated the cache) since that snapshot was taken before reading.
        Returns the snapshot after loading (None if not loaded); loading is not verifying.
        """
        raw: dict[str, dict[str, str]] = {p: {} for p in self.prefixes}
        for key, text in entries.items():
            root = self.root(key)
            if root is not None:
                raw[root][key] = text
        values = {p: {k[len(p) :]: decode(t) for k, t in sorted(raw[p].items())} for p in self.prefixes}
        with self._lock:
            if if_unchanged is not None and self._changes != if_unchanged.changes:
                return None
            self._raw, self._values = raw, values
            self._versions = {p: next(_versions) for p in self.prefixes}
            self._changes += 1
            self._revision = revision
            self._deadline = None if lapses_in is None else self.clock() + lapses_in
            self._loaded = True
            return Snapshot(self._changes, self._revision, {p: len(raw[p]) for p in self.prefixes})

    def apply(self, events: Iterable[tuple[str, str | None, int]], revision: int) -> None:
        """Changes seen by a watch: ``(key, JSON text or None for a delete, revision)``;
        afterwards every change up to ``revision`` is in. Changes already in are skipped."""
        events = list(events)
        if self._listeners:
            self._tell(events)
        with self._lock:
            if not self._loaded:
                return
            for key, text, at in events:
                root = self.root(key)
                if root is None or at <= self._revision:
                    continue
                name = key[len(root) :]
                raw = dict(self._raw[root])  # new mappings: readers hold the old ones without a lock
                values = dict(self._values[root])
                if text is None:
                    if raw.pop(key, None) is None:
                        continue
                    values.pop(name, None)
                else:
                    if raw.get(key) == text:
                        continue
                    raw[key] = text
                    values[name] = decode(text)
                    values = dict(sorted(values.items()))
                self._raw[root] = raw
                self._values[root] = values
                self._versions[root] = next(_versions)
                self._changes += 1
            self._revision = max(self._revision, revision)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self._changes, self._revision, {p: len(self._raw[p]) for p in self.prefixes})

    def confirm(self, snapshot: Snapshot, began: float, revision: int = 0) -> bool:
        """A verification that began at ``began`` found the backend equal to ``snapshot``
        as of ``revision``. It counts only if nothing changed in the cache meanwhile."""
        with self._lock:
            if not self._loaded or self._changes != snapshot.changes:
                return False
            if self._stale_at is not None and began <= self._stale_at:
                return False  # began before the cache was marked stale: it proves nothing after
            self._revision = max(self._revision, revision)
            if self._verified_at is None or began > self._verified_at:
                self._verified_at = began
            return True

    def expect(self, revision: int) -> None:
        """This process wrote a cached key at ``revision``: not fresh until the cache has it."""
        with self._lock:
            self._pending = max(self._pending, revision)

    def mark_stale(self) -> None:
        """Not fresh until the next successful verification (a watch broke, say)."""
        with self._lock:
            self._verified_at = None
            self._stale_at = self.clock()

    def invalidate(self) -> None:
        """Forget everything: not used until loaded and verified again."""
        with self._lock:
            self._loaded = False
            self._verified_at = None
            self._stale_at = self.clock()
            self._changes += 1

    # reads (no I/O) -------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """A copy of the value at ``key``, None if absent, or :data:`MISS` when not fresh."""
        root = self.root(key)
        if root is None or not self.fresh():
            return MISS
        text = self._raw[root].get(key)
        return None if text is None else decode(text)

    def list(self, prefix: str) -> dict[str, dict[str, Any]] | None:
        """Copies of the values under ``prefix`` (keys relative to it), or None when not fresh."""
        root = self.root(prefix)
        if root is None or not self.fresh():
            return None
        raw = self._raw[root]
        return {key[len(prefix) :]: decode(raw[key]) for key in sorted(raw) if key.startswith(prefix)}

    def view(self, prefix: str) -> CachedValues | None:
        """The shared values under one of the cached prefixes, or None when not fresh."""
        if prefix not in self._values or not self.fresh():
            return None
        with self._lock:
            return CachedValues(self._versions[prefix], self._values[prefix])
