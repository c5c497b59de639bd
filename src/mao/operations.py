"""What the API and the dashboard both offer, over the :class:`~mao.instance.Instance`: one
implementation that the API's routes and the dashboard's pages call, each presenting it its
own way (JSON, HTML). Nothing here knows of HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mao import federation
from mao.errors import InvalidInput, MAOError
from mao.instance import Instance
from mao.models import PipelineRunBody, check_cron_shape
from mao.slots import normalize_slot
from mao.store.models import LogLine, Run, StepRun
from mao.store.store import as_utc
from mao.untrusted import cap_line


def health(instance: Instance) -> dict[str, Any]:
    """Every check with its details: ``ok`` and, per check (store, registry), ``ok`` and what it
    answered or its ``error`` (and ``reason``, e.g. ``unreachable`` or ``no_quorum``)."""
    checks: dict[str, Any] = {}
    ok = True
    for name, probe in (("store", instance.store.ping), ("registry", instance.registry.ping)):
        try:
            result = probe()
            checks[name] = {"ok": True, **(result or {})}
        except MAOError as exc:
            ok = False
            checks[name] = {"ok": False, "error": exc.message}
            if "reason" in exc.details:
                checks[name]["reason"] = exc.details["reason"]
    return {"ok": ok, "instance": instance.name, "version": instance.version, "checks": checks}


def federation_status(instance: Instance) -> dict[str, Any]:
    """This instance, the registry's answer, the live instances and (on etcd) its members."""
    body: dict[str, Any] = {
        "instance": instance.name,
        "registry": instance.registry.ping(),
        "instances": federation.live_instances(instance.registry),
    }
    if instance.settings.registry_backend == "etcd":
        body["members"] = federation.members(instance.registry)
    return body


def run_pipeline(instance: Instance, request: PipelineRunBody) -> dict[str, Any]:
    """Run now (for ``slot``, a cron fire time, if given), or with ``cron`` schedule it (an
    empty or never-firing cron is a 400). A pipeline whose private variables are not all set
    here is a 400 naming them, run or schedule. With ``wait``, answer once the run has ended."""
    slot = normalize_slot(request.slot) if request.slot is not None else None
    if request.mode is not None and request.cron is None:
        raise InvalidInput("mode goes with cron: it says how the federation covers the schedule's slots")
    if request.cron is not None and slot is not None:
        raise InvalidInput("give either cron (schedule) or slot (run now for that fire time), not both")
    if request.cron is not None:
        check_cron_shape(request.cron)
    instance.pipelines.check_variables_set(request.name)
    if request.cron is not None:
        job = instance.scheduler.schedule(request.name, request.cron, request.mode or "every")
        return {"ok": True, "scheduled": True, "job": job}
    run_id = instance.runner.start(request.name, trigger="api", slot=slot)
    if request.wait:
        instance.runner.wait(run_id)
    run = instance.store.get_run(run_id)
    return {"ok": True, "scheduled": False, "run_id": run_id, "status": run.status, "slot": run.slot}


# ------------------------------------------------------------------ runs as they are shown


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    start, end = as_utc(start), as_utc(end)
    return round((end - start).total_seconds(), 3) if start and end else None


def step_dict(step: StepRun) -> dict[str, Any]:
    return {
        "name": step.name,
        "position": step.position,
        "tool": step.tool,
        "image": step.image,
        "image_digest": step.image_digest,
        "status": step.status,
        "exit_code": step.exit_code,
        "input_dataset": step.input_dataset,
        "input_commit": step.input_commit,
        "output_dataset": step.output_dataset,
        "output_branch": step.output_branch,
        "output_commit": step.output_commit,
        "merge_commit": step.merge_commit,
        "pushed": step.pushed,
        "error": step.error,
        "details": step.details or {},
        "suspect": bool(step.suspect),
        "suspect_detail": step.suspect_detail,
        "started_at": _iso(step.started_at),
        "finished_at": _iso(step.finished_at),
        "duration": _duration(step.started_at, step.finished_at),
    }


def run_dict(run: Run) -> dict[str, Any]:
    """A run with its steps, as ``GET /runs/{id}`` answers it and the run page shows it."""
    return {
        "id": run.id,
        "pipeline": run.pipeline,
        "status": run.status,
        "trigger": run.trigger,
        "slot": run.slot,
        "error": run.error,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration": _duration(run.started_at, run.finished_at),
        "steps": [step_dict(s) for s in run.steps],
    }


def log_dict(line: LogLine) -> dict[str, Any]:
    """A stored line as the API and the dashboard show it (cut if it was stored before lines were)."""
    return {"id": line.id, "step": line.step, "ts": _iso(line.ts), "line": cap_line(line.line)}
