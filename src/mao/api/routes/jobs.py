"""Scheduled jobs (one per scheduled pipeline)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mao.api.deps import InstanceDep

router = APIRouter(prefix="/jobs", tags=["schedules"])


@router.get("")
def list_jobs(instance: InstanceDep) -> dict[str, Any]:
    return {"jobs": instance.scheduler.jobs()}


@router.delete("/{job_id}")
def delete_job(job_id: str, instance: InstanceDep) -> dict[str, Any]:
    instance.scheduler.unschedule(job_id)
    return {"ok": True, "id": job_id}
