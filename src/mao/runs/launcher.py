"""Executing a run's steps, in order: per step, the output dataset's worktree and the input
view, the container, the quality check of what it reported, the commit, and the hand-over
to the dataset's policy (:mod:`mao.delivery`). The step's row is written at its start and
its end (:class:`~mao.runs.steps.StepRows`), with what the step learned on its way."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mao.agreement.ballots import SlotRef
from mao.agreement.tally import vote_deadline
from mao.delivery import NodeCommit
from mao.errors import GitError, MAOError, MergeConflict
from mao.events import RunStarted, StepFinished, StepStarted
from mao.executor.base import Placement, PlacementSink, PullPolicy, StepResources, StepSpec
from mao.runs.attempts import StepAttempts
from mao.runs.environment import node_branch, render_env, step_environment
from mao.runs.steps import RunInfo, StepContext
from mao.runs.transfers import StepTransferScope
from mao.status import RunStatus
from mao.store.models import utcnow
from mao.store.steps import SUCCEEDED, StepOutcome, StepRecord, StepRows

if TYPE_CHECKING:
    from mao.catalog import Catalog
    from mao.config import ExecutorName
    from mao.datasets.manager import DatasetManager
    from mao.delivery import MergeDelivery, VoteDelivery
    from mao.exchange import StepExchange
    from mao.executor.base import Executor
    from mao.models import StepIn
    from mao.quality import StepReports
    from mao.runs.runlog import Note, RunLog
    from mao.store.store import Store

log = logging.getLogger(__name__)

SlotDelivered = Callable[[str, str, str, str], "tuple[str, str] | None"]
"""``(pipeline, slot, dataset, step)`` → ``(instance, commit)`` of the node commit an earlier
claimer of this instance's claimed ``one``-mode slot pushed for the step, or None."""


@dataclass(frozen=True)
class StepEngines:
    """Where a step runs, each built on first use: its datasets' clones and worktrees, and
    the container engine."""

    datasets: Callable[[], DatasetManager]
    executor: Callable[[ExecutorName | None], Executor]
    """The engine of a step: the one it names (``executor``), None: the instance's."""
    exchange: Callable[[], StepExchange] | None = None
    """The transfers of steps on engines whose nodes do not share the disk (data by commit)."""


@dataclass(frozen=True)
class StepDelivery:
    """What becomes of a step's node commit: merged, or cast as a ballot; and, for the run of
    a claimed ``one``-mode slot, the node commits an earlier claimer delivered already."""

    merge: MergeDelivery
    vote: VoteDelivery
    slot_delivered: SlotDelivered | None = None


@dataclass(frozen=True)
class LaunchSettings:
    instance: str
    """This instance's name: node branches, ``MAO_INSTANCE``, the ``Mao-Instance`` trailer."""
    step_timeout: float
    """Seconds a step's container may run when its step sets no ``timeout``."""
    pull_policy: PullPolicy


class RunLauncher:
    """Runs the steps of one run after the other; the first that does not succeed ends the run."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        engines: StepEngines,
        delivery: StepDelivery,
        reports: StepReports,
        log: RunLog,
        settings: LaunchSettings,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self._datasets = engines.datasets
        self._executor = engines.executor
        self._exchange = engines.exchange
        self.events = log.events
        self.log = log
        self.merge = delivery.merge
        self.vote = delivery.vote
        self.reports = reports
        self.settings = settings
        self.slot_delivered = delivery.slot_delivered
        self.rows = StepRows(store)
        self.attempts = StepAttempts(store, log, engines.datasets)

    def launch(self, run: RunInfo, steps: list[StepIn], cancel: threading.Event) -> tuple[RunStatus, str | None]:
        """Run the steps; the run's status and error (the coordinator closes the run)."""
        self.store.update_run(run.id, status=RunStatus.RUNNING, started_at=utcnow())
        run.started = time.monotonic()
        self.log.line(run.id, None, f"run {run.id} of pipeline {run.pipeline} started on {self.settings.instance}")
        self.events.publish(RunStarted(run_id=run.id, pipeline=run.pipeline, trigger=run.trigger, slot=run.slot))
        variables = self.store.private_variables(run.pipeline)
        for step_id, step in zip(run.step_ids, steps, strict=True):
            if cancel.is_set():
                return RunStatus.CANCELLED, "cancelled before step " + step.name
            outcome = self._step(run, step_id, step, variables, cancel)
            if outcome.status != RunStatus.SUCCEEDED:
                return outcome.status, f"step {step.name}: {outcome.error}"
        return RunStatus.SUCCEEDED, None

    # one step --------------------------------------------------------------------

    def _step(
        self, run: RunInfo, step_id: int, step: StepIn, variables: dict[str, str], cancel: threading.Event
    ) -> StepOutcome:
        name = step.name
        started = time.monotonic()
        record = StepRecord()  # what the step learns on its way, stored with its end
        self.rows.started(step_id)
        self.log.line(run.id, name, f"step {name} started (tool {step.tool})")
        self.events.publish(StepStarted(run_id=run.id, pipeline=run.pipeline, step=name))
        try:
            outcome = self._run_step(run, step_id, step, variables, cancel, record)
        except MergeConflict as exc:
            # the message names the files already
            outcome = StepOutcome(RunStatus.CONFLICT, exc.message)
            record.details = {"conflict_files": exc.files}
        except MAOError as exc:
            outcome = StepOutcome(RunStatus.FAILED, exc.message)
        except Exception as exc:
            log.exception("step %s of run %s crashed", name, run.id)
            outcome = StepOutcome(RunStatus.FAILED, f"internal error: {exc.__class__.__name__}: {exc}")
        said = outcome.error if outcome.error and outcome.error != outcome.status else ""  # not "cancelled: cancelled"
        self.log.line(run.id, name, f"step {name} {outcome.status}" + (f": {said}" if said else ""))
        self.log.flush()
        self.rows.finished(step_id, outcome, record)
        self.events.publish(
            StepFinished(
                run_id=run.id,
                pipeline=run.pipeline,
                step=name,
                status=outcome.status,
                error=outcome.error,
                duration_s=time.monotonic() - started,
                executor=record.executor,
            )
        )
        return outcome

    def _placement_sink(self, step_id: int, say: Note) -> PlacementSink:
        """What an engine that queues steps calls as the step's placement changes: the step's
        row records it (a queued step shows ``queued``), and the run's log says it."""

        def placed(placement: Placement) -> None:
            self.rows.placed(step_id, placement.executor, placement.state, placement.node, placement.job)
            where = (f", node {placement.node}" if placement.node else "") + (
                f", job {placement.job}" if placement.job else ""
            )
            say(f"{placement.state} on {placement.executor}{where}")

        return placed

    def _run_step(
        self,
        run: RunInfo,
        step_id: int,
        step: StepIn,
        variables: dict[str, str],
        cancel: threading.Event,
        record: StepRecord,
    ) -> StepOutcome:
        say = self.log.note(run.id, step.name)
        ctx = self._prepare(run, step_id, step, variables, record, say)
        if ctx is None:
            return SUCCEEDED
        datasets = self._datasets()
        spec = StepSpec(
            run_id=run.id,
            pipeline=run.pipeline,
            step=ctx.name,
            image=ctx.image,
            output_dir=ctx.worktree,
            input_dir=ctx.input_dir,
            command=step.cmd,
            env=ctx.env,
            docker_socket=step.docker_socket,
            timeout=float(step.timeout or self.settings.step_timeout),
            pull_policy=self.settings.pull_policy,
            instance=ctx.instance,
            secret_values=ctx.secrets,
            resources=StepResources(**step.resources.model_dump()) if step.resources else StepResources(),
        )
        transfer = StepTransferScope(self._exchange)  # for engines whose nodes do not share the disk
        try:
            engine = self._executor(step.executor)
            record.executor = engine.name
            spec.on_placement = self._placement_sink(step_id, say)
            spec.transfer = transfer.open(engine, ctx.worktree, ctx.input_dir)
            result = transfer.settle(self.attempts.run(engine, spec, ctx, cancel))
        finally:
            transfer.close()
            if ctx.input_dir is not None and step.input_dataset:
                datasets.release_input(step.input_dataset, ctx.input_dir)
        record.exit_code, record.image_digest, record.node = result.exit_code, result.image_digest, result.node
        if result.status != RunStatus.SUCCEEDED:
            datasets.reset_worktrees(ctx.dataset, ctx.branch)
            return StepOutcome(RunStatus(result.status), result.error or str(result.status))
        report = self.reports.check(run, step, ctx.worktree, say, ctx.secrets)
        if report.suspect:
            record.suspect, record.suspect_detail = True, (report.detail or "")[:4000]
        trailers = ctx.trailers(result.image_digest, engine.name, result.node)
        outcome = self._deliver(ctx, trailers, record, report.suspect, say)
        if outcome.status == RunStatus.SUCCEEDED:
            self.reports.publish(report, run, step_id, say, record.output_commit)
        return outcome

    def _prepare(
        self, run: RunInfo, step_id: int, step: StepIn, variables: dict[str, str], record: StepRecord, say: Note
    ) -> StepContext | None:
        """The step's context: its tool and output dataset from the catalog, the slot's
        electorate (``vote``), its environment, its worktree and its input. None when an
        earlier claimer of this instance's claimed slot delivered the step already."""
        name, slot = step.name, run.slot
        tool = self.catalog.get_tool(step.tool)
        dataset = step.output_dataset
        doc = self.catalog.get_dataset(dataset)
        if slot and self.slot_delivered is not None:
            earlier = self.slot_delivered(run.pipeline, slot, dataset, name)
            if earlier is not None:  # an earlier claimer of the slot pushed it before it died
                record.output_commit = earlier[1]
                say(f"slot {slot}: delivered already by {earlier[0]} in {earlier[1]}; not run again")
                return None
        electorate = None
        if slot and doc.get("policy") == "vote":
            electorate = self.vote.open(SlotRef(dataset, run.pipeline, name, slot), vote_deadline(doc), say)
        env, secrets = render_env(step.env, variables, run.pipeline)
        env.update(step_environment(self.settings.instance, run.pipeline, name, run.id, slot))
        branch = node_branch(name, self.settings.instance)
        record.image, record.output_branch = tool["image"], branch
        datasets = self._datasets()

        largefiles = (doc.get("annex") or {}).get("largefiles")
        prepared = datasets.prepare_step(dataset, doc["master"], branch, offline_ok=True, largefiles=largefiles)
        # branches whose push failed earlier
        for pending_branch, ok in datasets.push_branches(dataset, prepared.pending).items():
            say(f"earlier commit on {pending_branch} " + ("pushed now" if ok else "still not pushed"))

        input_dir: Path | None = None
        input_commit = None
        if step.input_dataset:
            in_doc = self.catalog.get_dataset(step.input_dataset)
            input_dir, input_commit = datasets.acquire_input(
                step.input_dataset, in_doc["master"], annexed=bool(in_doc.get("annex")), paths=step.input_paths
            )
            record.input_commit = input_commit
            say(f"input {step.input_dataset} at ground-truth {input_commit or '(empty: no ground-truth yet)'}")
            if step.input_paths and input_commit and not any(input_dir.iterdir()):
                say(f"input_paths {', '.join(map(repr, step.input_paths))} match no file of {step.input_dataset}")

        for note in self.catalog.take_notes():
            say(note)
        return StepContext(
            run_id=run.id,
            step_id=step_id,
            pipeline=run.pipeline,
            step=step,
            slot=slot,
            instance=self.settings.instance,
            image=tool["image"],
            dataset=dataset,
            dataset_doc=doc,
            branch=branch,
            env=env,
            secrets=secrets,
            worktree=prepared.worktree,
            on_agreed=prepared.on_agreed,
            input_dir=input_dir,
            input_commit=input_commit,
            electorate=electorate,
            trigger_changes=tuple(run.changes),
        )

    def _deliver(
        self, ctx: StepContext, trailers: dict[str, str], record: StepRecord, suspect: bool, say: Note
    ) -> StepOutcome:
        """Commit the step's output on its node branch, then hand it to the dataset's policy:
        pushed with its merge into ground-truth in one push (``merge``), or pushed and cast
        as a ballot (``vote``; a suspect step casts none, so the slot's tally counts this
        instance as missing).

        A registry that cannot be reached never fails the step once the node branch is
        pushed: the merge or the ballot is queued for when it answers again.
        """
        datasets = self._datasets()
        commit = datasets.commit_output(ctx.worktree, ctx.commit_message, trailers)
        record.output_commit = commit
        say(f"committed {commit} on {ctx.branch}" if commit else "the tool changed nothing: no commit")
        unpushed = StepOutcome(
            RunStatus.FAILED,
            f"push of {ctx.branch} to {_redact(ctx.url)} failed; the commit is kept and the next run pushes it",
        )
        node = NodeCommit(
            dataset=ctx.dataset,
            branch=ctx.branch,
            commit=commit,
            message=ctx.merge_message,
            trailers=trailers,
            step=ctx.name,
            run_id=ctx.run_id,
            step_id=ctx.step_id,
        )
        if ctx.policy == "vote":
            record.pushed = datasets.push(ctx.dataset, ctx.branch)
            if not record.pushed:
                return unpushed
            ballot = self.vote.deliver(
                node,
                pipeline=ctx.pipeline,
                slot=ctx.slot,
                doc=ctx.dataset_doc,
                electorate=ctx.electorate,
                suspect=suspect,
                note=say,
            )
            if ballot is not None:
                record.details = {"ballot": ballot}
            return SUCCEEDED
        try:
            merged = self.merge.deliver(node, pushed=False, note=say, fetched=True, onto=ctx.on_agreed)
        except MergeConflict:
            record.pushed = True  # the node branch went alone
            raise
        except GitError as exc:
            record.pushed = False
            return StepOutcome(unpushed.status, f"{unpushed.error}: {exc.message}")
        record.pushed = merged.pushed
        if not merged.pushed:
            return unpushed
        record.merge_commit = merged.merge_commit
        return SUCCEEDED


def _redact(url: str) -> str:
    return re.sub(r"//[^@/]+@", "//***@", url)
