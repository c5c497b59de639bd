"""Pipelines: define, list, run now or on a cron schedule."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from mao.agreement.slots import normalize_slot
from mao.api.deps import InstanceDep
from mao.errors import InvalidInput
from mao.models import Name, PipelineIn, RunRequest
from mao.pipelines import describe, init_pipeline, remove_pipeline
from mao.validation import check_name

router = APIRouter(tags=["pipelines"])


@router.post("/pipeline/init")
def init(pipeline: PipelineIn, instance: InstanceDep) -> dict[str, Any]:
    return {"ok": True, "pipeline": init_pipeline(instance, pipeline)}


@router.get("/pipeline")
def list_pipelines(instance: InstanceDep) -> dict[str, Any]:
    return {"pipelines": [describe(row, instance) for row in instance.store.list_pipelines()]}


@router.get("/pipeline/{name}")
def get_pipeline(name: str, instance: InstanceDep) -> dict[str, Any]:
    check_name(name, "pipeline name")
    return describe(instance.store.get_pipeline(name), instance)


@router.delete("/pipeline/{name}")
def delete_pipeline(name: str, instance: InstanceDep, unregister: bool = False) -> dict[str, Any]:
    check_name(name, "pipeline name")
    remove_pipeline(instance, name, unregister)
    return {"ok": True, "name": name}


@router.post("/pipeline/run")
def run(request: RunRequest, instance: InstanceDep) -> dict[str, Any]:
    slot = normalize_slot(request.slot) if request.slot is not None else None
    if request.cron:
        if slot is not None:
            raise InvalidInput("give either cron (schedule) or slot (run now for that fire time), not both")
        job = instance.scheduler.schedule(request.name, request.cron)
        return {"ok": True, "scheduled": True, "job": job}
    run_id = instance.runner.start(request.name, trigger="api", slot=slot)
    run = instance.store.get_run(run_id)
    return {"ok": True, "scheduled": False, "run_id": run_id, "status": run.status, "slot": run.slot}


class VariableIn(BaseModel):
    name: str
    value: str


@router.put("/pipeline/{name}/variables")
def set_variable(name: Name, variable: VariableIn, instance: InstanceDep) -> dict[str, Any]:
    from mao.errors import InvalidInput

    check_name(name, "pipeline name")
    row = instance.store.get_pipeline(name)
    placeholders = PipelineIn(name=row.name, steps=row.steps).placeholders()
    if variable.name not in placeholders:
        raise InvalidInput(
            f"pipeline {name!r} has no private variable {variable.name!r}"
            + (f"; it uses {', '.join(placeholders)}" if placeholders else "; it uses none")
        )
    instance.store.set_private_variable(name, variable.name, variable.value)
    return {"ok": True, "pipeline": name, "variable": variable.name}
