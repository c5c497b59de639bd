"""Federation-wide schedules and the coverage of their slots."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field

from mao.api.deps import InstanceDep
from mao.api.schemas import Open, QueryName, Router, SinceQuery, responses
from mao.coverage.deadlines import with_deadlines
from mao.coverage.window import parse_since
from mao.errors import InvalidInput
from mao.models import Slot
from mao.slots import parse_slot
from mao.validation import check_name

router = Router(prefix="/federation", tags=["federation"])


class ScheduleOut(Open):
    pipeline: str
    instance: str
    cron: str
    timezone: str = "UTC"
    mode: str = Field(default="every", description="every: each instance runs each slot; one: one per slot")
    since: str | None = Field(default=None, description="when the instance scheduled it; earlier slots are not due")
    deadline: str | None = Field(
        default=None, description="the pipeline's slot deadline (e.g. 30m after the fire time); None: no deadline"
    )


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


class SlotRow(Open):
    slot: str
    mode: str
    open: bool = Field(description="the slot has not ended yet (its next fire time is still to come)")
    covered: bool = Field(description="some instance delivered it")
    delivered_by: list[str]
    cells: dict[str, str] = Field(description="instance -> delivered, failed, missing, pending or not_due")
    deadline: str | None = Field(
        default=None, description="met or missed once the slot's deadline passed and was checked; None otherwise"
    )


class CoverageOut(Open):
    pipeline: str
    since: str
    until: str
    instances: list[str]
    gaps: list[str] = Field(description="slots that ended with no delivered run anywhere, oldest first")
    slots: list[SlotRow]
    counts: dict[str, int]
    source: str = Field(description="index (etcd) or git+index (rebuilt from the git remotes)")
    schedules: list[ScheduleOut] = Field(default_factory=list, description="the schedules the grid is drawn from")
    restored: int = Field(default=0, description="cells a rebuild put back into the index")
    deadline: str | None = Field(default=None, description="the pipeline's slot deadline, e.g. 30m; None: none")
    deadlines_missed: list[str] = Field(
        default_factory=list, description="slots with no delivered run (or vote decision) by their deadline"
    )


@router.get("/schedules", response_model=ScheduleList, responses=responses(400, 503))
def list_schedules(instance: InstanceDep, pipeline: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Every instance's schedules (pipeline, cron, timezone, mode)."""
    if pipeline is not None:
        check_name(pipeline, "pipeline name")
    return {"schedules": with_deadlines(instance.coverage.schedules(pipeline), instance.catalog.pipelines())}


@router.get("/coverage", response_model=CoverageOut, responses=responses(400, 404, 503))
def get_coverage(
    instance: InstanceDep,
    pipeline: QueryName,
    since: SinceQuery = "24h",
    until: Annotated[Slot | None, Query(description="end of the window (ISO-8601); now by default")] = None,
    rebuild: bool = False,
) -> Any:
    """Slot × instance grid of ``pipeline`` since ``since``; ``rebuild`` reads the git remotes'
    node commits too (``Mao-Slot``, ``Mao-Instance``) and restores what the index lacked."""
    check_name(pipeline, "pipeline name")
    start = parse_since(since)
    end = parse_slot(until) if until is not None else None
    if end is not None and end <= start:
        raise InvalidInput(f"until {until!r} must be later than since {since!r}")
    grid = instance.coverage.coverage(pipeline, start, rebuild=rebuild, now=end)
    grid["schedules"] = with_deadlines(grid["schedules"], instance.catalog.pipelines())
    return grid
