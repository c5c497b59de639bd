"""Runs pipelines: each step's container, its datasets, its commit, push and merge, all recorded.

A run moves ``pending → running → (succeeded | failed | timed_out | cancelled | conflict)``
(:mod:`mao.status`); a run found ``running`` at start-up (the orchestrator died) becomes
``interrupted``. Closing a run is retried in the background until the store takes it
(:class:`~mao.closer.RunCloser`), so a full disk cannot leave a run ``running`` for ever.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao.agreement.slots import normalize_slot, parse_slot
from mao.closer import RunCloser
from mao.errors import Conflict, GitError, InvalidInput, MAOError, MergeConflict, RegistryUnavailable, StoreError
from mao.executor.base import StepSpec
from mao.models import PRIVATE_RE, StepIn
from mao.pipelines import unset_variables
from mao.quality import check_output, publish_insight
from mao.runqueue import RunQueue
from mao.status import RunStatus
from mao.store.logbuffer import LogBuffer
from mao.store.models import Run, utcnow
from mao.store.records import RecordedRun, RunRequest
from mao.store.store import as_utc

if TYPE_CHECKING:
    from mao.datasets.manager import Prepared
    from mao.instance import Instance

log = logging.getLogger(__name__)

TRAILER_PREFIX = "Mao-"


def node_branch(step: str, instance: str) -> str:
    return f"{step}-{instance}"


#: Environment names every step container gets; a step's own env cannot override them.
STEP_ENV_NAMES = ("MAO_INSTANCE", "MAO_PIPELINE", "MAO_STEP", "MAO_RUN_ID", "MAO_SLOT")


def step_environment(instance: str, pipeline: str, step: str, run_id: int, slot: str | None) -> dict[str, str]:
    """What a step's container learns about its run (``MAO_SLOT`` is empty for an ad-hoc run)."""
    return dict(zip(STEP_ENV_NAMES, (instance, pipeline, step, str(run_id), slot or ""), strict=True))


def render_env(
    env: dict[str, str], variables: dict[str, str], pipeline: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """Fill ``{{ NAME }}`` placeholders from the private variables. Returns the env and the
    secret values used (for log masking); raises InvalidInput naming any missing variable
    (and, given the ``pipeline``, the command that sets it)."""
    out, secrets, missing = {}, [], []
    for key, value in env.items():
        match = PRIVATE_RE.fullmatch(value)
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
    if missing and pipeline is not None:
        raise unset_variables(pipeline, missing)
    if missing:
        raise InvalidInput(
            "private variables not set on this instance: "
            + ", ".join(sorted(set(missing)))
            + " (set them with `maoctl pipeline set-variable` or `maoctl instance init`)"
        )
    return out, secrets


@dataclass
class _RunInfo:
    pipeline: str
    slot: str | None
    trigger: str
    step_ids: list[int]
    started: float | None = None  # time.monotonic() when it started running


@dataclass
class StepOutcome:
    status: RunStatus
    error: str | None = None


class Runner:
    """Records runs and executes them from its run queue: at most ``max_parallel_runs`` at
    once, one at a time per pipeline."""

    def __init__(self, instance: Instance, max_workers: int | None = None) -> None:
        self.instance = instance
        self._queue = RunQueue(max_workers or instance.settings.max_parallel_runs)
        self._cancel: dict[int, threading.Event] = {}
        self._futures: dict[int, Future[None]] = {}
        self._runs: dict[int, _RunInfo] = {}  # what the runner knows of its runs, so as not to read it back
        self._lock = threading.Lock()
        self.closer = RunCloser(instance.store, on_closed=self._closed)
        self.logs = LogBuffer(instance.store)
        """Log lines on their way to the store: in batches, each within a fraction of a second."""
        self._stopping = False

    # public ----------------------------------------------------------------------

    def start(self, pipeline: str, trigger: str = "manual", slot: str | None = None) -> int:
        """Record a run and queue it; returns its id at once. A run of the pipeline already
        pending or running is a Conflict naming it; an undefined pipeline NotFound.

        ``slot`` is the cron fire time the run is for (``2026-11-28T12:00:00Z``), or None
        for a plain ad-hoc run.
        """
        if slot is not None:
            slot = normalize_slot(slot)
        self._close_waiting(pipeline)
        [recorded] = self.record([RunRequest(pipeline, trigger, slot)], overlap="refuse")
        if recorded.run_id is None:
            raise recorded.error or Conflict(f"pipeline {pipeline!r} already has a run in progress")
        return recorded.run_id

    def record(self, requests: Sequence[RunRequest], overlap: str = "refuse") -> list[RecordedRun]:
        """Record many runs in one store transaction (see :meth:`Store.create_runs`) and
        queue those recorded; a burst of scheduler fires comes here as one batch."""
        self.closer.flush()
        with self.instance.catalog.in_use_lock, self._lock:  # a tool or dataset is not removed meanwhile
            recorded = self.instance.store.create_runs(
                requests, overlap=overlap, max_queued=self.instance.settings.max_queued_runs
            )
            for item in recorded:
                if item.run_id is not None:
                    self._enqueue(item.run_id, item.request.pipeline, item.steps)
        return recorded

    def _enqueue(self, run_id: int, pipeline: str, steps: list[StepIn]) -> None:
        cancel = threading.Event()
        self._cancel[run_id] = cancel
        try:
            self._futures[run_id] = self._queue.submit(
                run_id, pipeline, lambda: self._execute_safely(run_id, steps, cancel)
            )
        except RuntimeError:  # stopping: it stays pending, and the next start takes it up (recover)
            self._cancel.pop(run_id, None)
            log.warning("run %s stays pending: the orchestrator is stopping", run_id)

    def queued(self, pipeline: str | None = None) -> list[int]:
        """Runs recorded and waiting for a worker (``pending``), in the order they start."""
        return self._queue.waiting(pipeline)

    def _close_waiting(self, pipeline: str) -> None:
        """Runs whose close waits for the store are closed first; one of this pipeline's
        that still cannot be is a 503 saying so, not a 409 about a run in progress."""
        for run_id in self.closer.flush():
            item = self.closer.pending(run_id)
            if item is not None and self.instance.store.get_run(run_id).pipeline == pipeline:
                raise StoreError(
                    f"run {run_id} of pipeline {pipeline!r} has ended ({item.status}) but the local store cannot "
                    f"record it yet ({item.last_error}); it is retried, and the pipeline can run again once it is"
                )

    def run_sync(self, pipeline: str, trigger: str = "manual", slot: str | None = None) -> int:
        run_id = self.start(pipeline, trigger, slot)
        self.wait(run_id)
        return run_id

    def wait(self, run_id: int, timeout: float | None = None) -> None:
        future = self._futures.get(run_id)
        if future is not None:
            future.result(timeout=timeout)

    def cancel(self, run_id: int) -> bool:
        run = self.instance.store.get_run(run_id)
        if not RunStatus(run.status).active:
            raise Conflict(f"run {run_id} is {run.status}; only pending or running runs can be cancelled")
        if self.closer.pending(run_id) is not None:
            return True  # it has ended already; its status is recorded as soon as the store takes it
        event = self._cancel.get(run_id)
        if event is None:
            raise Conflict(f"run {run_id} is not executing in this process")
        event.set()
        waiting = self._queue.discard(run_id)
        if waiting is not None:  # queued, never started: it ends here
            self.closer.close(run_id, RunStatus.CANCELLED, "cancelled while queued")
            self._futures.pop(run_id, None)
            waiting.set_running_or_notify_cancel()
            waiting.set_result(None)
        return True

    def is_active(self, pipeline: str) -> bool:
        return self.instance.store.has_active_run(pipeline)

    def shutdown(self, wait: bool = True) -> None:
        self._stopping = True  # runs stopped from here on are interrupted, not cancelled
        for event in list(self._cancel.values()):
            event.set()
        self._queue.shutdown(wait=wait)  # runs still queued stay pending: recover() takes them at the next start
        self.closer.stop()
        self.logs.close()

    # execution -------------------------------------------------------------------

    def _execute_safely(self, run_id: int, steps: list[StepIn], cancel: threading.Event) -> None:
        try:
            status, error = self._execute(run_id, steps, cancel)
        except Exception as exc:
            log.exception("run %s crashed", run_id)
            status, error = RunStatus.FAILED, f"internal error: {exc.__class__.__name__}: {exc}"
        if status == RunStatus.CANCELLED and self._stopping:
            status, error = RunStatus.INTERRUPTED, "the orchestrator stopped while this run was in progress"
        try:
            self.closer.close(run_id, status, error)
        finally:
            if self.closer.pending(run_id) is None:
                self._cancel.pop(run_id, None)
            self._futures.pop(run_id, None)
            shutil.rmtree(self._scratch(run_id), ignore_errors=True)

    def _closed(self, run_id: int, status: RunStatus, error: str | None) -> None:
        """Called once the store has recorded a run's end."""
        self._cancel.pop(run_id, None)
        self._log(run_id, None, f"run {status}" + (f": {error}" if error else ""))
        self.logs.flush()
        info = self._runs.pop(run_id, None)
        self._publish_finished(run_id, status, error, info)
        if info is not None and not info.slot:
            return  # no slot: nothing for the coverage index
        try:
            from mao.coverage.index import record_run

            record_run(self.instance, run_id)
        except MAOError as exc:  # the git remotes keep the commits; a rebuild restores the cell
            log.warning("run %s: could not record its slot's coverage: %s", run_id, exc.message)

    def _execute(self, run_id: int, steps: list[StepIn], cancel: threading.Event) -> tuple[RunStatus, str | None]:
        store = self.instance.store
        run = self._runs.get(run_id)
        if run is None:
            stored = store.get_run(run_id)
            run = self._runs[run_id] = _RunInfo(
                stored.pipeline, stored.slot, stored.trigger, [s.id for s in stored.steps]
            )
        store.update_run(run_id, status=RunStatus.RUNNING, started_at=utcnow())
        run.started = time.monotonic()
        self._log(run_id, None, f"run {run_id} of pipeline {run.pipeline} started on {self.instance.name}")
        self.instance.events.publish(
            "run.started", run_id=run_id, pipeline=run.pipeline, trigger=run.trigger, slot=run.slot
        )
        variables = store.private_variables(run.pipeline)
        for step_id, step in zip(run.step_ids, steps, strict=True):
            if cancel.is_set():
                return RunStatus.CANCELLED, "cancelled before step " + step.name
            outcome = self._step(run_id, run.pipeline, step_id, step, variables, cancel, run.slot)
            if outcome.status != RunStatus.SUCCEEDED:
                return outcome.status, f"step {step.name}: {outcome.error}"
        return RunStatus.SUCCEEDED, None

    def _step(
        self,
        run_id: int,
        pipeline: str,
        step_id: int,
        step: StepIn,
        variables: dict[str, str],
        cancel: threading.Event,
        slot: str | None = None,
    ) -> StepOutcome:
        store = self.instance.store
        name = step.name
        started = time.monotonic()
        record: dict[str, Any] = {}  # what the step learns on its way, stored with its end
        store.update_step(step_id, status=RunStatus.RUNNING, started_at=utcnow())
        self._log(run_id, name, f"step {name} started (tool {step.tool})")
        self.instance.events.publish("step.started", run_id=run_id, pipeline=pipeline, step=name)
        try:
            outcome = self._run_step(run_id, pipeline, step_id, step, variables, cancel, slot, record)
        except MergeConflict as exc:
            # the message names the files already
            outcome = StepOutcome(RunStatus.CONFLICT, exc.message)
            record["details"] = {"conflict_files": exc.files}
        except MAOError as exc:
            outcome = StepOutcome(RunStatus.FAILED, exc.message)
        except Exception as exc:
            log.exception("step %s of run %s crashed", name, run_id)
            outcome = StepOutcome(RunStatus.FAILED, f"internal error: {exc.__class__.__name__}: {exc}")
        self._log(run_id, name, f"step {name} {outcome.status}" + (f": {outcome.error}" if outcome.error else ""))
        self.logs.flush()
        store.update_step(step_id, status=outcome.status, error=outcome.error, finished_at=utcnow(), **record)
        self.instance.events.publish(
            "step.finished",
            run_id=run_id,
            pipeline=pipeline,
            step=name,
            status=str(outcome.status),
            error=outcome.error,
            duration_s=time.monotonic() - started,
        )
        return outcome

    def _run_step(
        self,
        run_id: int,
        pipeline: str,
        step_id: int,
        step: StepIn,
        variables: dict[str, str],
        cancel: threading.Event,
        slot: str | None,
        record: dict[str, Any],
    ) -> StepOutcome:
        inst, catalog = self.instance, self.instance.catalog
        name = step.name
        tool = catalog.get_tool(step.tool)
        out_name = step.output_dataset
        out_dataset = catalog.get_dataset(out_name)
        out_url = out_dataset["master"]
        if slot and inst.claims.holds(pipeline, slot):
            from mao.coverage.index import slot_commits

            earlier = slot_commits(inst, pipeline, slot, [out_name]).get(name)
            if earlier is not None:  # an earlier claimer of the slot pushed it before it died
                record["output_commit"] = earlier[1]
                self._log(
                    run_id, name, f"slot {slot}: delivered already by {earlier[0]} in {earlier[1]}; not run again"
                )
                return StepOutcome(RunStatus.SUCCEEDED)
        if slot and out_dataset.get("policy") == "vote":
            self._open_slot(run_id, out_name, pipeline, name, slot, int(out_dataset.get("vote_deadline") or 600))
        env, secrets = render_env(step.env, variables, pipeline)
        env.update(step_environment(inst.name, pipeline, name, run_id, slot))
        branch = node_branch(name, inst.name)
        record.update(image=tool["image"], output_branch=branch)
        datasets = inst.datasets

        prepared = datasets.prepare_step(out_name, out_url, branch, offline_ok=True)
        worktree = prepared.worktree
        # branches whose push failed earlier
        for pending_branch, ok in datasets.push_branches(out_name, prepared.pending).items():
            self._log(
                run_id, name, f"earlier commit on {pending_branch} " + ("pushed now" if ok else "still not pushed")
            )

        input_dir: Path | None = None
        input_commit = None
        if step.input_dataset:
            in_name = step.input_dataset
            in_url = catalog.get_dataset(in_name)["master"]
            input_dir, input_commit = datasets.acquire_input(in_name, in_url)
            record["input_commit"] = input_commit
            self._log(run_id, name, f"input {in_name} at ground-truth {input_commit or '(empty: no ground-truth yet)'}")

        for note in catalog.take_notes():
            self._log(run_id, name, note)
        spec = StepSpec(
            run_id=run_id,
            pipeline=pipeline,
            step=name,
            image=tool["image"],
            output_dir=worktree,
            input_dir=input_dir,
            command=step.cmd,
            env=env,
            docker_socket=step.docker_socket,
            timeout=float(step.timeout or inst.settings.step_timeout),
            pull_policy=inst.settings.pull_policy,
            instance=inst.name,
            secret_values=secrets,
        )
        try:
            result = inst.executor.run(spec, lambda line: self._log(run_id, name, line), cancel)
        finally:
            if input_dir is not None and step.input_dataset:
                datasets.release_input(step.input_dataset, input_dir)
        record.update(exit_code=result.exit_code, image_digest=result.image_digest)
        if result.status != RunStatus.SUCCEEDED:
            datasets.reset_worktrees(out_name, branch)
            return StepOutcome(RunStatus(result.status), result.error or result.status)
        say = partial(self._log, run_id, name)
        report = check_output(inst, run_id, pipeline, step_id, step, worktree, slot, say, secrets)

        trailers = {
            "Mao-Run": str(run_id),
            "Mao-Pipeline": pipeline,
            "Mao-Step": name,
            "Mao-Tool": step.tool,
            "Mao-Image": tool["image"],
            "Mao-Image-Digest": result.image_digest or "unknown",
            "Mao-Input-Commit": input_commit or "none",
            "Mao-Instance": inst.name,
        }
        if slot:
            trailers["Mao-Slot"] = slot
        vote = out_dataset.get("policy", "merge") == "vote"
        outcome = self._deliver(
            run_id,
            pipeline,
            step_id,
            step,
            prepared,
            branch,
            out_name,
            out_url,
            trailers,
            slot,
            vote,
            record,
            report.suspect,
        )
        if outcome.status == RunStatus.SUCCEEDED:
            publish_insight(inst, report, run_id, pipeline, step_id, name, slot, say, record.get("output_commit"))
        return outcome

    def _deliver(
        self,
        run_id: int,
        pipeline: str,
        step_id: int,
        step: StepIn,
        prepared: Prepared,
        branch: str,
        out_name: str,
        out_url: str,
        trailers: dict[str, str],
        slot: str | None,
        vote: bool,
        record: dict[str, Any],
        suspect: bool = False,
    ) -> StepOutcome:
        """Commit the step's output on its node branch, then hand it to the dataset's policy:
        pushed with its merge into ground-truth in one push (``merge``), or pushed and cast
        as a ballot (``vote``; a suspect step casts none, so the slot's tally counts this
        instance as missing).

        A registry that cannot be reached never fails the step once the node branch is
        pushed: the merge or the ballot is queued for when it answers again.
        """
        inst, catalog, datasets = self.instance, self.instance.catalog, self.instance.datasets
        name = step.name
        commit = datasets.commit_output(prepared.worktree, f"{pipeline}/{name}: output of run {run_id}", trailers)
        record["output_commit"] = commit
        self._log(run_id, name, f"committed {commit} on {branch}" if commit else "the tool changed nothing: no commit")
        unpushed = StepOutcome(
            RunStatus.FAILED,
            f"push of {branch} to {_redact(out_url)} failed; the commit is kept and the next run pushes it",
        )
        message = f"Merge {branch} into ground-truth (run {run_id})"
        if vote:
            record["pushed"] = datasets.push(out_name, branch)
            if not record["pushed"]:
                return unpushed
        try:
            catalog.add_node(out_name, branch)
            if vote:
                if not slot:
                    self._log(
                        run_id, name, f"dataset {out_name} agrees by vote and this run has no slot: no ballot cast"
                    )
                    return StepOutcome(RunStatus.SUCCEEDED)
                if suspect:
                    self._log(run_id, name, f"the step is suspect: no ballot cast for slot {slot} (counted as missing)")
                    return StepOutcome(RunStatus.SUCCEEDED)
                from mao.agreement.tally import Tallier

                ballot = Tallier(inst).cast(out_name, pipeline, name, slot, run_id, branch, commit)
                record["details"] = {"ballot": ballot}
                self._log(
                    run_id, name, f"ballot for slot {slot}: output {ballot['output_id'][:12]} ({ballot['commit']})"
                )
                return StepOutcome(RunStatus.SUCCEEDED)
            lock_ttl = max(10, int(inst.settings.registry_timeout * 6))
            asked = time.monotonic()
            with inst.registry.lock(f"merge-{out_name}", ttl=lock_ttl, owner=inst.name):
                self._log(run_id, name, f"lock merge-{out_name} acquired after {time.monotonic() - asked:.2f}s")
                try:
                    merge = datasets.merge_to_ground_truth(
                        out_name, branch, message, trailers, source=commit, fetched=True, onto=prepared.on_agreed
                    )
                except MergeConflict:
                    record["pushed"] = True  # the node branch went alone
                    raise
                except GitError as exc:
                    record["pushed"] = False
                    return StepOutcome(unpushed.status, f"{unpushed.error}: {exc.message}")
            record["pushed"] = True
        except RegistryUnavailable as exc:  # the federation's part waits for the registry
            if not vote:
                record["pushed"] = datasets.push(out_name, branch)
                if not record["pushed"]:
                    return unpushed
            if vote and (suspect or not slot):
                why = "the step is suspect" if suspect else "the run has no slot"
                self._log(run_id, name, f"the registry is unavailable ({exc.message}); no ballot: {why}")
            elif vote and slot:
                from mao.agreement.deferred import defer_ballot

                defer_ballot(
                    inst,
                    run_id,
                    step_id,
                    dataset=out_name,
                    pipeline=pipeline,
                    step=name,
                    slot=slot,
                    branch=branch,
                    commit=commit,
                    reason=exc,
                )
            else:
                from mao.offline.merge import defer_merge

                defer_merge(inst, run_id, step_id, name, out_name, branch, commit, message, trailers, exc)
            return StepOutcome(RunStatus.SUCCEEDED)
        record["merge_commit"] = merge
        self._log(run_id, name, f"merged {branch} into ground-truth: {merge}")
        return StepOutcome(RunStatus.SUCCEEDED)

    def _open_slot(self, run_id: int, dataset: str, pipeline: str, step: str, slot: str, deadline: int) -> None:
        """The first run of a slot fixes its electorate (who is alive and has the schedule now)."""
        from mao.agreement.ballots import BallotBox, SlotRef

        try:
            electorate = BallotBox(self.instance.registry).open(
                SlotRef(dataset, pipeline, step, slot), self.instance.name, deadline
            )
        except MAOError as exc:  # casting the ballot opens it later
            self._log(run_id, step, f"could not open slot {slot} for the vote: {exc.message}")
            return
        self._log(run_id, step, f"slot {slot}: electorate {', '.join(electorate['electors'])}")

    # helpers ---------------------------------------------------------------------

    def _scratch(self, run_id: int) -> Path:
        return self.instance.settings.data_dir / "runs" / str(run_id)

    def _log(self, run_id: int, step: str | None, line: str) -> None:
        self.logs.add(run_id, step, line)
        self.instance.events.publish("log", run_id=run_id, step=step, line=line)

    def _publish_finished(self, run_id: int, status: RunStatus, error: str | None, info: _RunInfo | None) -> None:
        if info is not None and info.started is not None:
            pipeline, slot, duration = info.pipeline, info.slot, time.monotonic() - info.started
        else:
            try:
                run = self.instance.store.get_run(run_id)
            except MAOError:
                return
            pipeline, slot, duration = run.pipeline, run.slot, None
            if run.started_at is not None and run.finished_at is not None:
                duration = (run.finished_at - run.started_at).total_seconds()
        self.instance.events.publish(
            "run.finished",
            run_id=run_id,
            pipeline=pipeline,
            status=str(status),
            error=error,
            slot=slot,
            duration_s=duration,
        )


def _redact(url: str) -> str:
    return re.sub(r"//[^@/]+@", "//***@", url)


INTERRUPTED_RUNNING = "the orchestrator stopped while this run was in progress"


def recover(instance: Instance) -> list[int]:
    """After a stop or crash, before serving. Runs left ``running`` become ``interrupted``,
    their containers are removed and the dataset worktrees reset. Runs left ``pending``
    never started: those still due are queued again, oldest first; the others become
    ``interrupted`` with the reason (see :func:`_still_due`). Returns the interrupted ids."""
    store = instance.store
    now = datetime.now(UTC)
    ids: list[int] = []
    resumed: list[int] = []
    for run in sorted(store.active_runs(), key=lambda r: r.id):
        if run.status == RunStatus.PENDING:
            reason, steps = _still_due(instance, run, now)
            if reason is None:
                instance.runner._enqueue(run.id, run.pipeline, steps)
                resumed.append(run.id)
                continue
        else:
            reason = INTERRUPTED_RUNNING
        store.finish_run(run.id, RunStatus.INTERRUPTED, reason)
        ids.append(run.id)
    if resumed:
        log.info("runs %s were queued when the orchestrator stopped: queued again", resumed)
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


def _still_due(instance: Instance, run: Run, now: datetime) -> tuple[str | None, list[StepIn]]:
    """Whether a run that never started runs after a restart: None and its steps, or why not.

    It runs when it would have been run as a missed fire: its slot (an ad-hoc run: its
    creation) within ``misfire_grace_seconds``, and, for a slot run, ``misfire_policy``
    ``run_once`` and a schedule not in ``one`` mode (there the slot's claim decides who runs
    it, and it lapsed with the stop). Its pipeline must still have the steps it was
    recorded with."""
    settings = instance.settings
    since = parse_slot(run.slot) if run.slot else as_utc(run.created_at)
    never = "never started: the orchestrator stopped while it was queued"
    if run.slot and settings.misfire_policy == "skip":
        return f"{never} (misfire_policy skip)", []
    if since is None or (now - since).total_seconds() > settings.misfire_grace_seconds:
        return f"{never}, longer than misfire_grace_seconds ago", []
    if run.slot and run.trigger == "cron":
        job = instance.scheduler.job(run.pipeline)
        if job is not None and job.get("mode") == "one":
            return f"{never} (a one-mode slot: the claims decide who runs it)", []
    definition = instance.store.find_pipeline(run.pipeline)
    if definition is None or [s.name for s in definition.steps] != [s.name for s in run.steps]:
        return f"{never}, and its pipeline was removed or changed since", []
    return None, definition.steps
