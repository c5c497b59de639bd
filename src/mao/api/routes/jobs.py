"""Scheduled jobs (one per scheduled pipeline)."""

from __future__ import annotations

from typing import Any

from mao.api.deps import InstanceDep
from mao.api.schemas import JobDeleted, JobList, Router, responses

router = Router(prefix="/jobs", tags=["schedules"])


@router.get("", response_model=JobList, responses=responses(503))
def list_jobs(instance: InstanceDep) -> Any:
    return {"jobs": instance.scheduler.jobs()}


@router.delete("/{job_id}", response_model=JobDeleted, responses=responses(404, 503))
def delete_job(job_id: str, instance: InstanceDep) -> Any:
    instance.scheduler.unschedule(job_id)
    return {"ok": True, "id": job_id}
