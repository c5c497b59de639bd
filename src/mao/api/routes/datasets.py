"""Agreement on datasets: the votes per slot, an operator settling a disputed slot, and the
verified chain of a dataset's ground-truth."""

from __future__ import annotations

from typing import Any

from mao.api.deps import InstanceDep
from mao.api.schemas import PathName, Resolved, Router, SlotQuery, VerifyOut, VotesOut, responses
from mao.models import Slot, Strict
from mao.validation import Name, check_name

router = Router(prefix="/datasets", tags=["datasets"])


class ResolveIn(Strict):
    slot: Slot
    pick: Name
    pipeline: Name | None = None
    step: Name | None = None


@router.get("/{name}/votes", response_model=VotesOut, responses=responses(400, 404, 503))
def votes(name: PathName, instance: InstanceDep, slot: SlotQuery | None = None) -> Any:
    """Per slot: each elector's ballot or its absence, the outcome, the winner, the dissenters."""
    check_name(name, "dataset name")
    return instance.tallier.votes(name, slot)


@router.get("/{name}/verify", response_model=VerifyOut, responses=responses(400, 404, 503))
def verify(name: PathName, instance: InstanceDep) -> Any:
    """The first-parent chain of the dataset's ground-truth, each commit's signature judged, and
    the first commit that is not trusted (which this instance does not build on)."""
    check_name(name, "dataset name")
    return instance.verify_ground_truth(name)


@router.post("/{name}/resolve", response_model=Resolved, responses=responses(400, 404, 409, 413, 503))
def resolve(name: PathName, body: ResolveIn, instance: InstanceDep) -> Any:
    """Settle a disputed slot with the ballot of the instance ``pick``."""
    check_name(name, "dataset name")
    record = instance.tallier.resolve(name, body.slot, body.pick, body.pipeline, body.step)
    return {"ok": True, "dataset": name, **record}
