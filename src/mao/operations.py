"""What the API and the dashboard both offer: one implementation that the API's routes and the
dashboard's pages call (``instance.operations``), each presenting it its own way (JSON,
HTML). Nothing here knows of HTTP; :class:`Operations` gets the services it uses from the
wiring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mao import federation
from mao.errors import InvalidInput, MAOError
from mao.models import PipelineRunBody, check_cron_shape
from mao.pipelines import Pipelines
from mao.registry.base import Registry
from mao.slots import normalize_slot
from mao.store.models import LogLine, Run, StepAttempt, StepRun
from mao.store.store import Store, as_utc
from mao.untrusted import cap_line

if TYPE_CHECKING:
    from mao.runs.coordinator import RunCoordinator
    from mao.scheduler.scheduler import Scheduler


@dataclass(frozen=True)
class About:
    """Who answers: this instance's name and version, and whether its registry is etcd."""

    name: str
    version: str
    etcd: bool


class Operations:
    """Health, federation status, and running or scheduling a pipeline. The run coordinator
    and the scheduler are given as providers: they are built when first needed."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        pipelines: Pipelines,
        runs: Callable[[], RunCoordinator],
        schedules: Callable[[], Scheduler],
        about: About,
        untrusted: Callable[[], dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        """``untrusted``: the datasets whose fetched ground-truth advanced to a commit that is
        not trusted (:meth:`mao.agreement.trust.GroundTruthTrust.alerts`)."""
        self.store = store
        self.registry = registry
        self.pipelines = pipelines
        self._runs = runs
        self._schedules = schedules
        self.about = about
        self._untrusted = untrusted

    def health(self) -> dict[str, Any]:
        """Every check with its details: ``ok`` and, per check (store, registry), ``ok`` and what
        it answered or its ``error`` (and ``reason``, e.g. ``unreachable`` or ``no_quorum``)."""
        checks: dict[str, Any] = {}
        ok = True
        for name, probe in (("store", self.store.ping), ("registry", self.registry.ping)):
            try:
                result = probe()
                checks[name] = {"ok": True, **(result or {})}
            except MAOError as exc:
                ok = False
                checks[name] = {"ok": False, "error": exc.message}
                if "reason" in exc.details:
                    checks[name]["reason"] = exc.details["reason"]
        body = {"ok": ok, "instance": self.about.name, "version": self.about.version, "checks": checks}
        untrusted = self._untrusted() if self._untrusted is not None else {}
        if untrusted:  # still serving, from the last trusted commits: degraded, not down
            names = ", ".join(sorted(untrusted))
            checks["ground_truth"] = {
                "ok": False,
                "error": f"ground-truth advanced to a commit that is not trusted: {names}",
                "untrusted": untrusted,
            }
            body["degraded"] = True
        return body

    def federation_status(self) -> dict[str, Any]:
        """This instance, the registry's answer, the live instances and (on etcd) its members."""
        body: dict[str, Any] = {
            "instance": self.about.name,
            "registry": self.registry.ping(),
            "instances": federation.live_instances(self.registry),
        }
        if self.about.etcd:
            body["members"] = federation.members(self.registry)
        return body

    def run_pipeline(self, request: PipelineRunBody) -> dict[str, Any]:
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
        self.pipelines.check_variables_set(request.name)
        if request.cron is not None:
            job = self._schedules().schedule(request.name, request.cron, request.mode or "every")
            return {"ok": True, "scheduled": True, "job": job}
        runs = self._runs()
        run_id = runs.start(request.name, trigger="api", slot=slot)
        if request.wait:
            runs.wait(run_id)
        run = self.store.get_run(run_id)
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
        "attempts": [attempt_dict(a) for a in step.attempts],
        "executor": step.executor,
        "node": step.node,
        "job": step.job,
        "placement": step.placement,
    }


def attempt_dict(attempt: StepAttempt) -> dict[str, Any]:
    """One attempt of a step's container, as the API and the run page show it."""
    return {
        "number": attempt.number,
        "status": attempt.status,
        "exit_code": attempt.exit_code,
        "error": attempt.error,
        "started_at": _iso(attempt.started_at),
        "finished_at": _iso(attempt.finished_at),
        "duration": attempt.duration_s,
        "retry_delay": attempt.retry_delay_s,
    }


def run_dict(run: Run) -> dict[str, Any]:
    """A run with its steps, as ``GET /runs/{id}`` answers it and the run page shows it."""
    return {
        "id": run.id,
        "pipeline": run.pipeline,
        "status": run.status,
        "trigger": run.trigger,
        "trigger_changes": list(run.trigger_changes or []),
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
    return {"id": line.id, "step": line.step, "attempt": line.attempt, "ts": _iso(line.ts), "line": cap_line(line.line)}
