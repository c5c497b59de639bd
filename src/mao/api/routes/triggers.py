"""A pipeline's trigger: the datasets it watches and the changes it last saw and ran for."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from mao.api.deps import InstanceDep
from mao.api.schemas import PathName, Router, responses
from mao.validation import check_name

router = Router(tags=["pipelines"])


class TriggerHeadOut(BaseModel):
    dataset: str
    seen_commit: str | None = Field(description="ground-truth's commit on the remote at the last look")
    seen_at: str | None = Field(description="when that commit was first seen")
    fired_commit: str | None = Field(description="the commit the last triggered run (or claim elsewhere) was for")
    fired_at: str | None = None
    last_run_id: int | None = Field(description="this instance's last run for a change of this dataset")
    pending: bool = Field(description="moved since the last triggered run (waiting for the debounce or for all)")


class TriggersOut(BaseModel):
    pipeline: str
    trigger: dict[str, Any] | None = Field(description="datasets, mode (any|all), debounce (seconds), federation")
    datasets: list[TriggerHeadOut]


@router.get("/pipeline/{name}/triggers", response_model=TriggersOut, responses=responses(400, 404, 503))
def pipeline_triggers(name: PathName, instance: InstanceDep) -> Any:
    """The pipeline's trigger and, per watched dataset, the last change seen and run for."""
    check_name(name, "pipeline name")
    return instance.triggers.describe(instance.store.get_pipeline(name))
