"""Tools, datasets and pipeline names in the federation registry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mao.errors import AlreadyExists, Conflict, NotFound
from mao.models import DatasetIn, ToolIn
from mao.registry.base import Registry
from mao.validation import check_local_remote, check_name

TOOLS, DATASETS, PIPELINES, INSTANCES = "tools/", "datasets/", "pipelines/", "instances/"


class Catalog:
    def __init__(self, registry: Registry, *, local_remote_roots: Sequence[Path] | None = None) -> None:
        self.registry = registry
        self.local_remote_roots = local_remote_roots
        """Where a dataset's local-path remote may be (None: anywhere)."""

    def _get(self, kind: str, prefix: str, name: str) -> dict[str, Any]:
        check_name(name, f"{kind} name")
        value = self.registry.get(prefix + name)
        if value is None:
            raise NotFound(f"{kind} {name!r} is not registered")
        return value

    def _remove(self, kind: str, prefix: str, name: str, active_runs: Iterable[Any] = ()) -> None:
        check_name(name, f"{kind} name")
        users = [run for run in active_runs if any(_uses(step, kind, name) for step in run.steps)]
        if users:
            runs = ", ".join(f"run {run.id} of pipeline {run.pipeline!r}" for run in users)
            raise Conflict(
                f"{kind} {name!r} is used by {runs}, still in progress on this instance; "
                "wait for it to finish or cancel it first",
                details={"runs": [run.id for run in users]},
            )
        if not self.registry.delete(prefix + name):
            raise NotFound(f"{kind} {name!r} is not registered")

    # tools ---------------------------------------------------------------------

    def add_tool(self, tool: ToolIn) -> dict[str, Any]:
        value = tool.model_dump()
        if not self.registry.create(TOOLS + tool.name, value):
            raise AlreadyExists(f"tool {tool.name!r} is already registered; remove it first to change it")
        return value

    def get_tool(self, name: str) -> dict[str, Any]:
        return self._get("tool", TOOLS, name)

    def tools(self) -> dict[str, dict[str, Any]]:
        return self.registry.list(TOOLS)

    def remove_tool(self, name: str, active_runs: Iterable[Any] = ()) -> None:
        """Unregister a tool; a Conflict if one of ``active_runs`` (this instance's) uses it."""
        self._remove("tool", TOOLS, name, active_runs)

    # datasets ------------------------------------------------------------------

    def add_dataset(self, dataset: DatasetIn) -> dict[str, Any]:
        if self.local_remote_roots is not None:
            check_local_remote(dataset.body.master, self.local_remote_roots)
        value = dataset.body.model_dump()
        if not self.registry.create(DATASETS + dataset.name, value):
            raise AlreadyExists(f"dataset {dataset.name!r} is already registered; remove it first to change it")
        return value

    def get_dataset(self, name: str) -> dict[str, Any]:
        return _dataset_defaults(self._get("dataset", DATASETS, name))

    def datasets(self) -> dict[str, dict[str, Any]]:
        return {name: _dataset_defaults(value) for name, value in self.registry.list(DATASETS).items()}

    def remove_dataset(self, name: str, active_runs: Iterable[Any] = ()) -> None:
        """Unregister a dataset; a Conflict if one of ``active_runs`` (this instance's) reads or writes it."""
        self._remove("dataset", DATASETS, name, active_runs)

    def add_node(self, dataset: str, branch: str) -> None:
        """Record ``branch`` in the dataset's ``nodes`` (a no-op if it is there)."""
        with self.registry.lock(f"datasets-{dataset}", ttl=15, owner=branch):
            value = self.get_dataset(dataset)
            nodes = value.setdefault("nodes", [])
            if branch not in nodes:
                nodes.append(branch)
                self.registry.put(DATASETS + dataset, value)

    # pipelines -----------------------------------------------------------------

    def register_pipeline(self, definition: dict[str, Any]) -> None:
        self.registry.put(PIPELINES + definition["name"], definition)

    def get_pipeline(self, name: str) -> dict[str, Any]:
        return self._get("pipeline", PIPELINES, name)

    def pipelines(self) -> dict[str, dict[str, Any]]:
        return self.registry.list(PIPELINES)

    def unregister_pipeline(self, name: str) -> bool:
        return self.registry.delete(PIPELINES + name)

    def missing(self, tools: list[str], datasets: list[str]) -> tuple[list[str], list[str]]:
        known_tools = self.tools()
        known_datasets = self.datasets()
        return (
            sorted({t for t in tools if t not in known_tools}),
            sorted({d for d in datasets if d not in known_datasets}),
        )


def _uses(step: Any, kind: str, name: str) -> bool:
    """Whether a run's step (a stored step row) uses the tool or dataset ``name``."""
    if kind == "tool":
        return step.tool == name
    return name in (step.input_dataset, step.output_dataset)


def _dataset_defaults(value: dict[str, Any]) -> dict[str, Any]:
    """Datasets registered before policies existed agree by merging."""
    value.setdefault("policy", "merge")
    value.setdefault("vote_deadline", 600)
    return value
