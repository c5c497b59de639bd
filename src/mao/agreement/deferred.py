"""The ``ballot`` kind of deferred federation work: a step's vote, cast once the registry
answers again. A ballot for a slot that is still open counts; one that arrives after the
tally is recorded as late (see :meth:`mao.agreement.tally.Tallier.cast`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mao.offline.models import FederationTask
from mao.offline.replay import defer, register_handler

if TYPE_CHECKING:
    from mao.errors import RegistryUnavailable
    from mao.instance import Instance

KIND = "ballot"


def defer_ballot(
    instance: Instance,
    run_id: int,
    step_id: int,
    *,
    dataset: str,
    pipeline: str,
    step: str,
    slot: str,
    branch: str,
    commit: str | None,
    reason: RegistryUnavailable,
) -> int:
    payload = {"dataset": dataset, "pipeline": pipeline, "step": step, "slot": slot, "branch": branch, "commit": commit}
    return defer(instance, KIND, payload, run_id=run_id, step_id=step_id, reason=reason)


@register_handler(KIND)
def replay_ballot(instance: Instance, task: FederationTask, note: Callable[[str], None]) -> dict[str, Any]:
    from mao.agreement.tally import Tallier

    p = task.payload
    instance.catalog.add_node(p["dataset"], p["branch"])
    ballot = Tallier(instance).cast(
        p["dataset"], p["pipeline"], p["step"], p["slot"], task.run_id or 0, p["branch"], p["commit"]
    )
    note(
        f"ballot for slot {p['slot']}: output {ballot['output_id'][:12]} ({ballot['commit']})"
        + (" — late: the slot was tallied before it arrived" if ballot.get("late") else "")
    )
    return {"ballot": ballot}
