"""Tools, datasets and pipeline names in the federation registry."""

from __future__ import annotations

from typing import Any

from mao.errors import AlreadyExists, NotFound
from mao.models import DatasetIn, ToolIn
from mao.registry.base import Registry
from mao.validation import check_name

TOOLS, DATASETS, PIPELINES, INSTANCES = "tools/", "datasets/", "pipelines/", "instances/"


class Catalog:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _get(self, kind: str, prefix: str, name: str) -> dict[str, Any]:
        check_name(name, f"{kind} name")
        value = self.registry.get(prefix + name)
        if value is None:
            raise NotFound(f"{kind} {name!r} is not registered")
        return value

    def _remove(self, kind: str, prefix: str, name: str) -> None:
        check_name(name, f"{kind} name")
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

    def remove_tool(self, name: str) -> None:
        self._remove("tool", TOOLS, name)

    # datasets ------------------------------------------------------------------

    def add_dataset(self, dataset: DatasetIn) -> dict[str, Any]:
        value = dataset.body.model_dump()
        if not self.registry.create(DATASETS + dataset.name, value):
            raise AlreadyExists(f"dataset {dataset.name!r} is already registered; remove it first to change it")
        return value

    def get_dataset(self, name: str) -> dict[str, Any]:
        return _dataset_defaults(self._get("dataset", DATASETS, name))

    def datasets(self) -> dict[str, dict[str, Any]]:
        return {name: _dataset_defaults(value) for name, value in self.registry.list(DATASETS).items()}

    def remove_dataset(self, name: str) -> None:
        self._remove("dataset", DATASETS, name)

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


def _dataset_defaults(value: dict[str, Any]) -> dict[str, Any]:
    """Datasets registered before policies existed agree by merging."""
    value.setdefault("policy", "merge")
    value.setdefault("vote_deadline", 600)
    return value
