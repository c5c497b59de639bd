"""Recording a node branch in a dataset's ``nodes``: once, under the lock; afterwards no lock at all."""

from __future__ import annotations

from typing import Any

from mao.catalog import Catalog
from mao.models import DatasetIn
from mao.registry.memory import MemoryRegistry


class CountingRegistry(MemoryRegistry):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.locks = 0

    def lock(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        self.locks += 1
        return super().lock(*args, **kwargs)


def test_a_listed_node_branch_takes_no_lock() -> None:
    registry = CountingRegistry()
    catalog = Catalog(registry)
    catalog.add_dataset(DatasetIn.model_validate({"name": "d", "body": {"master": "https://x.org/d.git"}}))

    catalog.add_node("d", "step-node-a")
    catalog.add_node("d", "step-node-b")
    assert registry.locks == 2
    for _ in range(5):
        catalog.add_node("d", "step-node-a")
    assert registry.locks == 2
    assert catalog.get_dataset("d")["nodes"] == ["step-node-a", "step-node-b"]
