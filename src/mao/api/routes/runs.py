"""Run history: runs, their steps, and their logs."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Path, Query
from starlette.concurrency import run_in_threadpool

from mao.api.deps import InstanceDep
from mao.api.schemas import LogsOut, Router, RunCancelled, RunList, RunOut, responses
from mao.events import RunFinished
from mao.operations import log_dict, run_dict
from mao.status import RunStatus, parse_status
from mao.store.models import Run

if TYPE_CHECKING:
    from mao.instance import Instance

router = Router(prefix="/runs", tags=["runs"])
RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]
MAX_WAIT = 60.0
"""Seconds ``GET /runs/{id}?wait=`` may hold a request."""
RECHECK = 1.0
"""While waiting, the store is read again this often, whatever the events say."""


@router.get("", response_model=RunList, responses=responses(400, 503))
def list_runs(
    instance: InstanceDep,
    pipeline: str | None = Query(default=None, max_length=64),
    status: str | None = Query(default=None, max_length=16),
    limit: int = Query(default=50, ge=1, le=1000),
) -> Any:
    wanted = parse_status(status) if status else None
    return {"runs": [run_dict(r) for r in instance.store.list_runs(pipeline, wanted, limit)]}


@router.get("/{run_id}", response_model=RunOut, responses=responses(400, 404, 503))
async def get_run(
    run_id: RunId,
    instance: InstanceDep,
    wait: float = Query(
        default=0,
        ge=0,
        le=MAX_WAIT,
        description="seconds to wait for a pending or running run to end before answering (long poll)",
    ),
) -> Any:
    """A run with its steps. With ``wait``, an active run is answered when it ends (or when
    ``wait`` seconds have passed), so a client follows it without polling."""
    if not wait:
        return run_dict(await run_in_threadpool(instance.store.get_run, run_id))
    return run_dict(await _run_once_ended(instance, run_id, wait))


async def _run_once_ended(instance: Instance, run_id: int, wait: float) -> Run:
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()

    def on_finished(event: RunFinished) -> None:  # in the runner's thread: only hand over
        if event.run_id == run_id:
            loop.call_soon_threadsafe(ended.set)

    unsubscribe = instance.events.subscribe(on_finished, RunFinished)
    try:
        deadline = time.monotonic() + wait
        while True:  # subscribed before reading: an end between the two is not missed
            run = await run_in_threadpool(instance.store.get_run, run_id)
            left = deadline - time.monotonic()
            if not RunStatus(run.status).active or left <= 0:
                return run
            try:
                await asyncio.wait_for(ended.wait(), timeout=min(left, RECHECK))
            except TimeoutError:
                pass
    finally:
        unsubscribe()


@router.get("/{run_id}/logs", response_model=LogsOut, responses=responses(400, 404, 503))
def get_logs(
    run_id: RunId,
    instance: InstanceDep,
    after: int = Query(default=0, ge=0, le=2**63 - 1, description="only the lines with a larger id"),
    before: int | None = Query(default=None, ge=1, le=2**63 - 1, description="only the lines with a smaller id"),
    step: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=10000, ge=1, le=100000, description="lines at most"),
    tail: bool = Query(default=False, description="the last `limit` lines of the range, not the first"),
) -> Any:
    """A page of the run's log lines, oldest first: ``after`` and ``limit`` read on from a line,
    ``tail`` (with ``before``) reads back from the end; ``earlier`` and ``later`` say whether
    there is more on either side. A line is at most 64 KiB (a longer one was cut)."""
    run = instance.store.get_run(run_id)
    lines = instance.store.logs(run_id, after=after, step=step, limit=limit, before=before, tail=tail)
    if lines:
        below, above = lines[0].id, lines[-1].id
    else:  # an empty range: what lies outside it
        below = after + 1 if before is None else min(before, after + 1)
        above = after if before is None else max(after, before - 1)
    return {
        "run_id": run_id,
        "status": run.status,
        "lines": [log_dict(line) for line in lines],
        "earlier": instance.store.has_logs(run_id, step, below=below),
        "later": instance.store.has_logs(run_id, step, above=above),
    }


@router.post("/{run_id}/cancel", response_model=RunCancelled, responses=responses(400, 404, 409, 503))
def cancel_run(run_id: RunId, instance: InstanceDep) -> Any:
    instance.runner.cancel(run_id)
    return {"ok": True, "run_id": run_id}
