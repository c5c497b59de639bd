"""Tools, datasets and pipeline names in the federation registry.

With a DefinitionCache, every definition read from the registry is also kept in the local
store; when the registry cannot be reached, a single definition is served from there (its
last-known value), which is logged and noted for the run that asked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao.errors import AlreadyExists, Conflict, MAOError, NotFound, RegistryUnavailable
from mao.models import VOTE_DEADLINE, DatasetIn, ToolIn
from mao.registry.base import Registry
from mao.registry.keys import DATASETS, PIPELINES, TOOLS, dataset_lock
from mao.validation import check_local_remote, check_name

if TYPE_CHECKING:
    from mao.offline.cache import DefinitionCache

log = logging.getLogger(__name__)

MAX_NOTES = 20


class Catalog:
    def __init__(
        self,
        registry: Registry,
        cache: DefinitionCache | None = None,
        *,
        local_remote_roots: Sequence[Path] | None = None,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.local_remote_roots = local_remote_roots
        """Where a dataset's local-path remote may be (None: anywhere)."""
        self._notes = threading.local()
        self.in_use_lock = threading.RLock()
        """Held from reading who uses a tool or dataset to removing it, and by whatever starts
        using one (recording a run, defining a pipeline): neither slips in between."""

    def _get(self, kind: str, prefix: str, name: str) -> dict[str, Any]:
        check_name(name, f"{kind} name")
        try:
            value = self.registry.get(prefix + name)
        except RegistryUnavailable as exc:
            cached = self._last_known(kind, name, exc)
            if cached is None:
                raise
            return cached
        if value is None:
            self._cache("forget", kind, name)
            raise NotFound(f"{kind} {name!r} is not registered")
        self._cache("remember", kind, name, value)
        return value

    def _list(self, kind: str, prefix: str) -> dict[str, dict[str, Any]]:
        values = self.registry.list(prefix)
        self.remember(kind, values)
        return values

    def remember(self, kind: str, values: Mapping[str, dict[str, Any]]) -> None:
        """Keep ``values`` (read from the registry) as the last-known definitions of their names."""
        self._cache("remember_all", kind, values)

    # last-known definitions ------------------------------------------------------

    def _cache(self, method: str, *args: Any) -> None:
        if self.cache is None:
            return
        try:
            getattr(self.cache, method)(*args)
        except MAOError as exc:  # the registry's answer stands even if the local copy cannot be kept
            log.warning("could not keep the registry's definitions in the local store: %s", exc.message)

    def _last_known(self, kind: str, name: str, exc: RegistryUnavailable) -> dict[str, Any] | None:
        if self.cache is None:
            return None
        try:
            row = self.cache.get(kind, name)
        except MAOError:
            return None
        if row is None:
            return None
        note = (
            f"the registry is unavailable: working from the last-known definition of {kind} {name} "
            f"(read {row.fetched_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
        log.warning("%s; %s", note, exc.message)
        notes = self._pending_notes()
        notes.append(note)
        del notes[:-MAX_NOTES]  # threads that never take their notes (API workers) keep only the last few
        return row.value

    def _pending_notes(self) -> list[str]:
        if not hasattr(self._notes, "items"):
            self._notes.items = []
        items: list[str] = self._notes.items
        return items

    def take_notes(self) -> list[str]:
        """What this thread's reads took from the last-known definitions since the last call."""
        notes = list(self._pending_notes())
        self._notes.items = []
        return notes

    def _remove(self, kind: str, prefix: str, name: str) -> None:
        """Unregister ``name`` (checked not in use by the caller)."""
        if not self.registry.delete(prefix + name):
            raise NotFound(f"{kind} {name!r} is not registered")
        self._cache("forget", kind, name)

    # tools ---------------------------------------------------------------------

    def add_tool(self, tool: ToolIn) -> dict[str, Any]:
        value = tool.model_dump()
        if not self.registry.create(TOOLS + tool.name, value):
            raise AlreadyExists(f"tool {tool.name!r} is already registered; remove it first to change it")
        return value

    def get_tool(self, name: str) -> dict[str, Any]:
        return self._get("tool", TOOLS, name)

    def tools(self) -> dict[str, dict[str, Any]]:
        return self._list("tool", TOOLS)

    def remove_tool(
        self,
        name: str,
        active_runs: Iterable[Any] = (),
        pipelines: Mapping[str, Sequence[Any]] | None = None,
        *,
        force: bool = False,
        scheduled: Iterable[str] = (),
    ) -> None:
        """Unregister a tool; a Conflict if one of ``active_runs`` (this instance's) uses it,
        or, unless ``force``, one of ``pipelines`` (name: its steps) does. Callers hold
        :attr:`in_use_lock` from reading those to the removal."""
        check_name(name, "tool name")
        _refuse_running("tool", name, active_runs)
        _refuse_defined("tool", name, pipelines or {}, force=force, scheduled=scheduled)
        self._remove("tool", TOOLS, name)

    # datasets ------------------------------------------------------------------

    def add_dataset(self, dataset: DatasetIn) -> dict[str, Any]:
        if self.local_remote_roots is not None:
            check_local_remote(dataset.body.master, self.local_remote_roots)
        value = dataset.body.model_dump(exclude_none=True)
        if not self.registry.create(DATASETS + dataset.name, value):
            raise AlreadyExists(f"dataset {dataset.name!r} is already registered; remove it first to change it")
        return value

    def get_dataset(self, name: str) -> dict[str, Any]:
        return dataset_defaults(self._get("dataset", DATASETS, name))

    def datasets(self) -> dict[str, dict[str, Any]]:
        return {name: dataset_defaults(value) for name, value in self._list("dataset", DATASETS).items()}

    def remove_dataset(
        self,
        name: str,
        active_runs: Iterable[Any] = (),
        pipelines: Mapping[str, Sequence[Any]] | None = None,
        *,
        force: bool = False,
        scheduled: Iterable[str] = (),
    ) -> None:
        """Unregister a dataset; a Conflict if one of ``active_runs`` (this instance's) reads or
        writes it, or, unless ``force``, a step of one of ``pipelines`` does (as :meth:`remove_tool`)."""
        check_name(name, "dataset name")
        _refuse_running("dataset", name, active_runs)
        _refuse_defined("dataset", name, pipelines or {}, force=force, scheduled=scheduled)
        self._remove("dataset", DATASETS, name)

    def add_node(self, dataset: str, branch: str) -> None:
        """Record ``branch`` in the dataset's ``nodes`` (a no-op if it is there: no lock is
        taken when the registry already lists it, as after a node's first run)."""
        if branch in (self.registry.get(DATASETS + check_name(dataset, "dataset name")) or {}).get("nodes", []):
            return
        with self.registry.lock(dataset_lock(dataset), ttl=15, owner=branch):
            value = self.registry.get_latest(DATASETS + dataset)  # not a cached copy: it is written back
            if value is None:
                raise NotFound(f"dataset {dataset!r} is not registered")
            value = dataset_defaults(value)
            nodes = value.setdefault("nodes", [])
            if branch not in nodes:
                nodes.append(branch)
                self.registry.put(DATASETS + dataset, value)

    # pipelines -----------------------------------------------------------------

    def register_pipeline(self, definition: dict[str, Any]) -> None:
        self.registry.put(PIPELINES + definition["name"], definition)
        self._cache("remember", "pipeline", definition["name"], definition)

    def get_pipeline(self, name: str) -> dict[str, Any]:
        return self._get("pipeline", PIPELINES, name)

    def pipelines(self) -> dict[str, dict[str, Any]]:
        return self._list("pipeline", PIPELINES)

    def unregister_pipeline(self, name: str) -> bool:
        return self.registry.delete(PIPELINES + name)

    def missing(self, tools: list[str], datasets: list[str]) -> tuple[list[str], list[str]]:
        known_tools = self.tools()
        known_datasets = self.datasets()
        return (
            sorted({t for t in tools if t not in known_tools}),
            sorted({d for d in datasets if d not in known_datasets}),
        )


def _refuse_running(kind: str, name: str, active_runs: Iterable[Any]) -> None:
    """A Conflict if one of this instance's ``active_runs`` uses the tool or dataset ``name``."""
    users = [run for run in active_runs if any(_uses(step, kind, name) for step in run.steps)]
    if users:
        runs = ", ".join(f"run {run.id} of pipeline {run.pipeline!r}" for run in users)
        raise Conflict(
            f"{kind} {name!r} is used by {runs}, still in progress on this instance; "
            "wait for it to finish or cancel it first",
            details={"runs": [run.id for run in users]},
        )


def _refuse_defined(
    kind: str, name: str, pipelines: Mapping[str, Sequence[Any]], *, force: bool, scheduled: Iterable[str]
) -> None:
    """Unless ``force``, a Conflict if one of ``pipelines`` (name: its steps) uses ``name``."""
    using = sorted(p for p, steps in pipelines.items() if any(_uses(step, kind, name) for step in steps))
    if using and not force:
        timed = set(scheduled)
        listed = ", ".join(repr(p) + (" (scheduled)" if p in timed else "") for p in using)
        raise Conflict(
            f"{kind} {name!r} is used by {len(using)} pipeline{'s' if len(using) > 1 else ''}: {listed}; "
            f"nothing was removed. Remove those pipelines first (maoctl pipeline remove --name NAME "
            f"--unregister), or remove the {kind} anyway with --force (API: ?force=true): their runs then "
            f"fail until a {kind} of that name is registered again",
            details={"pipelines": using, "scheduled": sorted(timed & set(using))},
        )


def _uses(step: Any, kind: str, name: str) -> bool:
    """Whether a step (a stored step row, a StepIn, or a registered definition's step, a dict)
    uses the tool or dataset ``name``."""
    if isinstance(step, Mapping):
        fields = (step.get("tool"),) if kind == "tool" else (step.get("input_dataset"), step.get("output_dataset"))
    elif kind == "tool":
        fields = (getattr(step, "tool", None),)
    else:
        fields = (getattr(step, "input_dataset", None), getattr(step, "output_dataset", None))
    return name in fields


def dataset_defaults(value: dict[str, Any]) -> dict[str, Any]:
    """Datasets registered before policies existed agree by merging."""
    value.setdefault("policy", "merge")
    value.setdefault("vote_deadline", VOTE_DEADLINE)
    return value
