"""The ``merge`` kind: the node branch recorded in the dataset's ``nodes`` and merged into
``ground-truth`` under the federation-wide lock, as a run does when the registry answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mao.offline.models import FederationTask
from mao.offline.replay import defer, register_handler

if TYPE_CHECKING:
    from mao.errors import RegistryUnavailable
    from mao.instance import Instance

KIND = "merge"


def merge_lock_ttl(instance: Instance) -> int:
    return max(10, int(instance.settings.registry_timeout * 6))


def defer_merge(
    instance: Instance,
    run_id: int,
    step_id: int,
    step: str,
    dataset: str,
    branch: str,
    commit: str | None,
    message: str,
    trailers: dict[str, str],
    reason: RegistryUnavailable,
) -> int:
    payload = {
        "dataset": dataset,
        "branch": branch,
        "commit": commit,
        "step": step,
        "message": message,
        "trailers": trailers,
    }
    return defer(instance, KIND, payload, run_id=run_id, step_id=step_id, reason=reason)


@register_handler(KIND)
def replay_merge(instance: Instance, task: FederationTask, note: Callable[[str], None]) -> dict[str, Any]:
    p = task.payload
    dataset, branch = p["dataset"], p["branch"]
    instance.catalog.add_node(dataset, branch)
    lock = instance.registry.lock(f"merge-{dataset}", ttl=merge_lock_ttl(instance), owner=instance.name)
    asked = time.monotonic()
    with lock:
        note(f"lock merge-{dataset} acquired after {time.monotonic() - asked:.2f}s")
        merge = instance.datasets.merge_to_ground_truth(dataset, branch, p["message"], p["trailers"])
    if task.step_id is not None:
        instance.store.update_step(task.step_id, merge_commit=merge)
    note(f"merged {branch} into ground-truth: {merge}")
    return {"merge_commit": merge}
