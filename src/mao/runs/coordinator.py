"""Runs recorded, queued, cancelled, waited for and closed.

A run moves ``pending → running → (succeeded | failed | timed_out | cancelled | conflict)``
(:mod:`mao.status`); a run found ``running`` at start-up (the orchestrator died) becomes
``interrupted`` (:mod:`mao.runs.recovery`). Closing a run is retried in the background
until the store takes it (:class:`~mao.closer.RunCloser`), so a full disk cannot leave a
run ``running`` for ever. The steps themselves are the launcher's
(:class:`~mao.runs.launcher.RunLauncher`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao.closer import RunCloser
from mao.errors import Conflict, MAOError, StoreError
from mao.events import RunFinished
from mao.runqueue import RunQueue
from mao.runs.steps import RunInfo
from mao.slots import normalize_slot
from mao.status import RunStatus
from mao.store.records import RecordedRun, RunRequest

if TYPE_CHECKING:
    from mao.models import StepIn
    from mao.runs.launcher import RunLauncher
    from mao.runs.runlog import RunLog
    from mao.store.logbuffer import LogBuffer
    from mao.store.store import Store

log = logging.getLogger(__name__)

INTERRUPTED_RUNNING = "the orchestrator stopped while this run was in progress"


@dataclass(frozen=True)
class QueueSettings:
    max_workers: int
    """Runs executing at once (``max_parallel_runs``)."""
    max_queued: int
    """Runs waiting ``pending`` at most, under ``overlap_policy: queue`` (``max_queued_runs``)."""
    runs_dir: Path
    """Each run's scratch directory is made under it and removed when the run ends."""


class RunCoordinator:
    """Records runs and executes them from its run queue: at most ``settings.max_workers``
    at once, one at a time per pipeline.

    ``in_use`` is held while runs are recorded, so that a tool or dataset they use is not
    removed meanwhile (the catalog's ``in_use_lock``). A run's end is published
    (``run.finished``, on the events of ``log``) once the store has it: the coverage record,
    the metrics and the notifications listen to that."""

    def __init__(
        self,
        *,
        store: Store,
        launcher: RunLauncher,
        log: RunLog,
        in_use: AbstractContextManager[Any],
        settings: QueueSettings,
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.log = log
        self.events = log.events
        self.in_use = in_use
        self.max_queued = settings.max_queued
        self.runs_dir = settings.runs_dir
        self._queue = RunQueue(settings.max_workers)
        self._cancel: dict[int, threading.Event] = {}
        self._futures: dict[int, Future[None]] = {}
        self._runs: dict[int, RunInfo] = {}  # what is known of the runs, so as not to read it back
        self._lock = threading.Lock()
        self.closer = RunCloser(store, on_closed=self._closed)
        self._stopping = False

    @property
    def logs(self) -> LogBuffer:
        """Log lines on their way to the store: in batches, each within a fraction of a second."""
        return self.log.buffer

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
        with self.in_use, self._lock:  # a tool or dataset is not removed meanwhile
            recorded = self.store.create_runs(requests, overlap=overlap, max_queued=self.max_queued)
            for item in recorded:
                if item.run_id is not None:
                    self.requeue(item.run_id, item.request.pipeline, item.steps)
        return recorded

    def requeue(self, run_id: int, pipeline: str, steps: list[StepIn]) -> None:
        """Queue a run recorded ``pending`` (now, or before a stop) to execute ``steps``."""
        cancel = threading.Event()
        self._cancel[run_id] = cancel
        try:
            self._futures[run_id] = self._queue.submit(
                run_id, pipeline, lambda: self._execute_safely(run_id, steps, cancel)
            )
        except RuntimeError:  # stopping: it stays pending, and the next start takes it up (recovery)
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
            if item is not None and self.store.get_run(run_id).pipeline == pipeline:
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
        run = self.store.get_run(run_id)
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
        return self.store.has_active_run(pipeline)

    def status(self, run_id: int) -> RunStatus:
        """The run's status as recorded now."""
        return RunStatus(self.store.get_run(run_id).status)

    def shutdown(self, wait: bool = True) -> None:
        self._stopping = True  # runs stopped from here on are interrupted, not cancelled
        for event in list(self._cancel.values()):
            event.set()
        self._queue.shutdown(wait=wait)  # runs still queued stay pending: recovery takes them at the next start
        self.closer.stop()
        self.log.close()

    # execution -------------------------------------------------------------------

    def _execute_safely(self, run_id: int, steps: list[StepIn], cancel: threading.Event) -> None:
        try:
            status, error = self.launcher.launch(self._run(run_id), steps, cancel)
        except Exception as exc:
            log.exception("run %s crashed", run_id)
            status, error = RunStatus.FAILED, f"internal error: {exc.__class__.__name__}: {exc}"
        if status == RunStatus.CANCELLED and self._stopping:
            status, error = RunStatus.INTERRUPTED, INTERRUPTED_RUNNING
        try:
            self.closer.close(run_id, status, error)
        finally:
            if self.closer.pending(run_id) is None:
                self._cancel.pop(run_id, None)
            self._futures.pop(run_id, None)
            shutil.rmtree(self.runs_dir / str(run_id), ignore_errors=True)

    def _run(self, run_id: int) -> RunInfo:
        run = self._runs.get(run_id)
        if run is None:
            stored = self.store.get_run(run_id)
            run = self._runs[run_id] = RunInfo(
                run_id,
                stored.pipeline,
                stored.slot,
                stored.trigger,
                [s.id for s in stored.steps],
                changes=list(stored.trigger_changes or []),
            )
        return run

    def _closed(self, run_id: int, status: RunStatus, error: str | None) -> None:
        """Called once the store has recorded a run's end."""
        self._cancel.pop(run_id, None)
        self.log.line(run_id, None, f"run {status}" + (f": {error}" if error else ""))
        self.log.flush()
        self._publish_finished(run_id, status, error, self._runs.pop(run_id, None))

    def _publish_finished(self, run_id: int, status: RunStatus, error: str | None, info: RunInfo | None) -> None:
        if info is not None and info.started is not None:
            pipeline, slot, duration = info.pipeline, info.slot, time.monotonic() - info.started
        else:
            try:
                run = self.store.get_run(run_id)
            except MAOError:
                return
            pipeline, slot, duration = run.pipeline, run.slot, None
            if run.started_at is not None and run.finished_at is not None:
                duration = (run.finished_at - run.started_at).total_seconds()
        self.events.publish(
            RunFinished(run_id=run_id, pipeline=pipeline, status=status, error=error, slot=slot, duration_s=duration)
        )
