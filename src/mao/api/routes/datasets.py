"""Agreement on datasets: the votes per slot, and an operator settling a disputed slot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from mao.agreement.tally import Tallier
from mao.api.deps import InstanceDep
from mao.models import Name, Strict
from mao.validation import check_name

router = APIRouter(prefix="/datasets", tags=["datasets"])


class ResolveIn(Strict):
    slot: str
    pick: Name
    pipeline: Name | None = None
    step: Name | None = None


@router.get("/{name}/votes")
def votes(name: str, instance: InstanceDep, slot: str | None = Query(default=None, max_length=40)) -> dict[str, Any]:
    check_name(name, "dataset name")
    return Tallier(instance).votes(name, slot)


@router.post("/{name}/resolve")
def resolve(name: str, body: ResolveIn, instance: InstanceDep) -> dict[str, Any]:
    check_name(name, "dataset name")
    record = Tallier(instance).resolve(name, body.slot, body.pick, body.pipeline, body.step)
    return {"ok": True, "dataset": name, **record}
