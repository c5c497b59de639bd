"""Runs pipelines: each step's container, its datasets, its commit, push and merge, all recorded.

A run moves ``pending → running → (succeeded | failed | timed_out | cancelled | conflict)``;
a run found ``running`` at start-up (the orchestrator died) becomes ``interrupted``.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao.errors import Conflict, InvalidInput, MAOError, MergeConflict
from mao.executor.base import StepSpec
from mao.models import PRIVATE_RE
from mao.store.models import utcnow

if TYPE_CHECKING:
    from mao.instance import Instance

log = logging.getLogger(__name__)

TRAILER_PREFIX = "Mao-"


def node_branch(step: str, instance: str) -> str:
    return f"{step}-{instance}"


def render_env(env: dict[str, str], variables: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Fill ``{{ NAME }}`` placeholders from the private variables. Returns the env and the
    secret values used (for log masking); raises InvalidInput naming any missing variable."""
    out, secrets, missing = {}, [], []
    for key, value in env.items():
        match = PRIVATE_RE.match(value)
        if match:
            name = match.group(1)
            if name not in variables:
                missing.append(name)
                continue
            out[key] = variables[name]
            secrets.append(variables[name])
            # log masking works line by line: mask each line of a multi-line value too
            secrets.extend(part for part in variables[name].splitlines() if len(part.strip()) >= 4)
        else:
            out[key] = value
    if missing:
        raise InvalidInput(
            "private variables not set on this instance: " + ", ".join(sorted(set(missing)))
            + " (set them with `maoctl pipeline set-variable` or `maoctl instance init`)"
        )
    return out, secrets


@dataclass
class StepOutcome:
    status: str
    error: str | None = None


class Runner:
    """Starts runs in worker threads; one active run per pipeline."""

    def __init__(self, instance: Instance, max_workers: int = 4) -> None:
        self.instance = instance
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="mao-run")
        self._cancel: dict[int, threading.Event] = {}
        self._futures: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._stopping = False

    # public ----------------------------------------------------------------------

    def start(self, pipeline: str, trigger: str = "manual") -> int:
        """Create a run and start it in the background; returns its id at once."""
        definition = self.instance.store.get_pipeline(pipeline)
        with self._lock:
            run = self.instance.store.create_run(pipeline, definition.steps, trigger=trigger)
            cancel = threading.Event()
            self._cancel[run.id] = cancel
            self._futures[run.id] = self._pool.submit(self._execute_safely, run.id, definition.steps, cancel)
        return run.id

    def run_sync(self, pipeline: str, trigger: str = "manual") -> int:
        run_id = self.start(pipeline, trigger)
        self.wait(run_id)
        return run_id

    def wait(self, run_id: int, timeout: float | None = None) -> None:
        future = self._futures.get(run_id)
        if future is not None:
            future.result(timeout=timeout)

    def cancel(self, run_id: int) -> bool:
        run = self.instance.store.get_run(run_id)
        if run.status not in ("pending", "running"):
            raise Conflict(f"run {run_id} is {run.status}; only pending or running runs can be cancelled")
        event = self._cancel.get(run_id)
        if event is None:
            raise Conflict(f"run {run_id} is not executing in this process")
        event.set()
        return True

    def is_active(self, pipeline: str) -> bool:
        return any(r.pipeline == pipeline for r in self.instance.store.active_runs())

    def shutdown(self, wait: bool = True) -> None:
        self._stopping = True  # runs stopped from here on are interrupted, not cancelled
        for event in list(self._cancel.values()):
            event.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    # execution -------------------------------------------------------------------

    def _execute_safely(self, run_id: int, steps: list[dict[str, Any]], cancel: threading.Event) -> None:
        store = self.instance.store
        try:
            status, error = self._execute(run_id, steps, cancel)
        except Exception as exc:  # noqa: BLE001 - the run must end, whatever happened
            log.exception("run %s crashed", run_id)
            status, error = "failed", f"internal error: {exc.__class__.__name__}: {exc}"
        if status == "cancelled" and self._stopping:
            status, error = "interrupted", "the orchestrator stopped while this run was in progress"
        try:
            store.finish_run(run_id, status, error)
            self._log(run_id, None, f"run {status}" + (f": {error}" if error else ""))
        finally:
            self._cancel.pop(run_id, None)
            self._futures.pop(run_id, None)
            shutil.rmtree(self._scratch(run_id), ignore_errors=True)

    def _execute(self, run_id: int, steps: list[dict[str, Any]], cancel: threading.Event) -> tuple[str, str | None]:
        store = self.instance.store
        run = store.get_run(run_id)
        store.update_run(run_id, status="running", started_at=utcnow())
        self._log(run_id, None, f"run {run_id} of pipeline {run.pipeline} started on {self.instance.name}")
        variables = store.private_variables(run.pipeline)
        for step_row, step in zip(run.steps, steps, strict=True):
            if cancel.is_set():
                return "cancelled", "cancelled before step " + step["name"]
            outcome = self._step(run_id, run.pipeline, step_row.id, step, variables, cancel)
            if outcome.status != "succeeded":
                return outcome.status, f"step {step['name']}: {outcome.error}"
        return "succeeded", None

    def _step(
        self, run_id: int, pipeline: str, step_id: int, step: dict[str, Any], variables: dict[str, str],
        cancel: threading.Event,
    ) -> StepOutcome:
        store = self.instance.store
        name = step["name"]
        store.update_step(step_id, status="running", started_at=utcnow())
        self._log(run_id, name, f"step {name} started (tool {step['tool']})")
        try:
            outcome = self._run_step(run_id, pipeline, step_id, step, variables, cancel)
        except MergeConflict as exc:
            outcome = StepOutcome("conflict", exc.message + ": " + ", ".join(exc.files))
            store.update_step(step_id, details={"conflict_files": exc.files})
        except MAOError as exc:
            outcome = StepOutcome("failed", exc.message)
        except Exception as exc:  # noqa: BLE001
            log.exception("step %s of run %s crashed", name, run_id)
            outcome = StepOutcome("failed", f"internal error: {exc.__class__.__name__}: {exc}")
        store.update_step(step_id, status=outcome.status, error=outcome.error, finished_at=utcnow())
        self._log(run_id, name, f"step {name} {outcome.status}" + (f": {outcome.error}" if outcome.error else ""))
        return outcome

    def _run_step(
        self, run_id: int, pipeline: str, step_id: int, step: dict[str, Any], variables: dict[str, str],
        cancel: threading.Event,
    ) -> StepOutcome:
        inst, store, catalog = self.instance, self.instance.store, self.instance.catalog
        name = step["name"]
        tool = catalog.get_tool(step["tool"])
        out_name = step["output_dataset"]
        out_url = catalog.get_dataset(out_name)["master"]
        env, secrets = render_env(step.get("env") or {}, variables)
        branch = node_branch(name, inst.name)
        store.update_step(step_id, image=tool["image"], output_branch=branch)
        datasets = inst.datasets

        worktree = datasets.prepare_output(out_name, out_url, branch, offline_ok=True)
        for pending_branch, ok in datasets.push_pending(out_name).items():
            self._log(run_id, name, f"earlier commit on {pending_branch} " + ("pushed now" if ok else "still not pushed"))

        input_dir: Path | None = None
        input_commit = None
        if step.get("input_dataset"):
            in_name = step["input_dataset"]
            in_url = catalog.get_dataset(in_name)["master"]
            input_dir = self._scratch(run_id) / name / "input"
            input_dir.mkdir(parents=True, exist_ok=True)
            input_commit = datasets.snapshot_input(in_name, in_url, input_dir)
            store.update_step(step_id, input_commit=input_commit)
            self._log(run_id, name, f"input {in_name} at ground-truth {input_commit or '(empty: no ground-truth yet)'}")

        spec = StepSpec(
            run_id=run_id, pipeline=pipeline, step=name, image=tool["image"], output_dir=worktree,
            input_dir=input_dir, command=step.get("cmd"), env=env, docker_socket=bool(step.get("docker_socket")),
            timeout=float(step.get("timeout") or inst.settings.step_timeout), pull_policy=inst.settings.pull_policy,
            instance=inst.name, secret_values=secrets,
        )
        result = inst.executor.run(spec, lambda line: self._log(run_id, name, line), cancel)
        store.update_step(step_id, exit_code=result.exit_code, image_digest=result.image_digest)
        if result.status != "succeeded":
            datasets.reset_worktrees(out_name, branch)
            return StepOutcome(result.status, result.error or result.status)

        trailers = {
            "Mao-Run": str(run_id), "Mao-Pipeline": pipeline, "Mao-Step": name, "Mao-Tool": step["tool"],
            "Mao-Image": tool["image"], "Mao-Image-Digest": result.image_digest or "unknown",
            "Mao-Input-Commit": input_commit or "none", "Mao-Instance": inst.name,
        }
        commit = datasets.commit_output(worktree, f"{pipeline}/{name}: output of run {run_id}", trailers)
        store.update_step(step_id, output_commit=commit)
        self._log(run_id, name, f"committed {commit} on {branch}" if commit else "the tool changed nothing: no commit")

        pushed = datasets.push(out_name, branch)
        store.update_step(step_id, pushed=pushed)
        if not pushed:
            return StepOutcome(
                "failed", f"push of {branch} to {_redact(out_url)} failed; the commit is kept and the next run pushes it"
            )
        catalog.add_node(out_name, branch)

        lock_ttl = max(10, int(inst.settings.registry_timeout * 6))
        with inst.registry.lock(f"merge-{out_name}", ttl=lock_ttl, owner=inst.name):
            merge = datasets.merge_to_ground_truth(
                out_name, branch, f"Merge {branch} into ground-truth (run {run_id})", trailers
            )
        store.update_step(step_id, merge_commit=merge)
        self._log(run_id, name, f"merged {branch} into ground-truth: {merge}")
        return StepOutcome("succeeded")

    # helpers ---------------------------------------------------------------------

    def _scratch(self, run_id: int) -> Path:
        return self.instance.settings.data_dir / "runs" / str(run_id)

    def _log(self, run_id: int, step: str | None, line: str) -> None:
        try:
            self.instance.store.append_log(run_id, step, line)
        except MAOError:
            log.warning("could not store a log line of run %s: %s", run_id, line)


def _redact(url: str) -> str:
    return re.sub(r"//[^@/]+@", "//***@", url)


def recover(instance: Instance) -> list[int]:
    """After a crash: runs left active become ``interrupted``, their containers are removed
    and the dataset worktrees reset."""
    ids = instance.store.mark_interrupted()
    if not ids:
        return ids
    log.warning("runs %s were interrupted by a stop of the orchestrator", ids)
    try:
        removed = sum(instance.executor.remove_run_containers(run_id) for run_id in ids)
        log.info("removed %d left-over containers", removed)
    except MAOError as exc:
        log.warning("could not remove left-over containers: %s", exc.message)
    try:
        instance.datasets.reset_worktrees(None)
    except MAOError as exc:
        log.warning("could not reset dataset worktrees: %s", exc.message)
    for run_id in ids:
        shutil.rmtree(instance.settings.data_dir / "runs" / str(run_id), ignore_errors=True)
    return ids

