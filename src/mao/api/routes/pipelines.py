"""Pipelines: define, list, run now or on a cron schedule."""

from __future__ import annotations

from typing import Any

from fastapi import Query
from pydantic import BaseModel, Field

from mao.api.deps import InstanceDep
from mao.api.schemas import (
    MetricSeries,
    OkName,
    PathName,
    PipelineInitOut,
    PipelineList,
    PipelineOut,
    Router,
    RunStarted,
    VariableSet,
    responses,
)
from mao.errors import InvalidInput
from mao.models import ENV_NAME_RE, MAX_ENV_VALUE, PipelineIn, PipelineRunBody
from mao.store.metrics import MetricStore
from mao.validation import Name, check_name

router = Router(tags=["pipelines"])


@router.post("/pipeline/init", response_model=PipelineInitOut, responses=responses(400, 409, 413, 503))
def init(pipeline: PipelineIn, instance: InstanceDep) -> Any:
    return {"ok": True, "pipeline": instance.pipelines.init(pipeline)}


@router.get("/pipeline", response_model=PipelineList, responses=responses(503))
def list_pipelines(instance: InstanceDep) -> Any:
    """This instance's pipelines: a JSON list, as the first MAO's client expects."""
    return [instance.pipelines.describe(row) for row in instance.store.list_pipelines()]


@router.get("/pipeline/{name}", response_model=PipelineOut, responses=responses(400, 404, 503))
def get_pipeline(name: PathName, instance: InstanceDep) -> Any:
    check_name(name, "pipeline name")
    return instance.pipelines.describe(instance.store.get_pipeline(name))


@router.get("/pipelines/{name}/metrics", response_model=MetricSeries, responses=responses(400, 404, 503))
def pipeline_metrics(
    name: PathName,
    instance: InstanceDep,
    metric: str | None = Query(default=None, max_length=64, description="only this metric"),
    step: str | None = Query(default=None, max_length=64, description="only this step"),
    limit: int = Query(default=1000, ge=1, le=10000, description="the last this many values"),
) -> Any:
    """The control metrics this instance recorded for a pipeline's steps, oldest first (by
    slot, then time); ``suspect`` marks a value that broke its rule."""
    check_name(name, "pipeline name")
    if metric is not None:
        check_name(metric, "metric name")
    if step is not None:
        check_name(step, "step name")
    instance.store.get_pipeline(name)
    return MetricStore(instance.store).series(name, step=step, metric=metric, limit=limit)


@router.delete("/pipeline/{name}", response_model=OkName, responses=responses(400, 404, 409, 503))
def delete_pipeline(name: PathName, instance: InstanceDep, unregister: bool = False) -> Any:
    """Remove a pipeline here; ``unregister`` also removes it from the registry (first)."""
    check_name(name, "pipeline name")
    instance.pipelines.remove(name, unregister)
    return {"ok": True, "name": name}


@router.post("/pipeline/run", response_model=RunStarted, responses=responses(400, 404, 409, 413, 503))
def run(request: PipelineRunBody, instance: InstanceDep) -> Any:
    """Run now (for ``slot``, a cron fire time, if given), or with ``cron`` schedule it
    (:meth:`mao.operations.Operations.run_pipeline`)."""
    return instance.operations.run_pipeline(request)


class VariableIn(BaseModel):
    name: str = Field(pattern=ENV_NAME_RE.pattern)
    value: str = Field(max_length=MAX_ENV_VALUE)


@router.put("/pipeline/{name}/variables", response_model=VariableSet, responses=responses(400, 404, 413, 503))
def set_variable(name: Name, variable: VariableIn, instance: InstanceDep) -> Any:

    check_name(name, "pipeline name")
    row = instance.store.get_pipeline(name)
    placeholders = row.placeholders()
    if variable.name not in placeholders:
        raise InvalidInput(
            f"pipeline {name!r} has no private variable {variable.name!r}"
            + (f"; it uses {', '.join(placeholders)}" if placeholders else "; it uses none")
        )
    instance.store.set_private_variable(name, variable.name, variable.value)
    return {"ok": True, "pipeline": name, "variable": variable.name}
