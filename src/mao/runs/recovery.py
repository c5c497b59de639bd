"""After a stop or crash, before serving: what becomes of the runs left ``running`` or ``pending``."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mao.errors import MAOError
from mao.runs.coordinator import INTERRUPTED_RUNNING
from mao.slots import parse_slot
from mao.status import RunStatus
from mao.store.store import as_utc

if TYPE_CHECKING:
    from mao.datasets.manager import DatasetManager
    from mao.executor.base import Executor
    from mao.models import StepIn
    from mao.runs.coordinator import RunCoordinator
    from mao.store.models import Run
    from mao.store.store import Store

log = logging.getLogger(__name__)

ScheduleMode = Callable[[str], "str | None"]
"""The mode (``every`` or ``one``) of the pipeline's schedule on this instance, None without one."""


@dataclass(frozen=True)
class RecoverySettings:
    misfire_policy: str
    """``run_once``: a run queued before the stop runs if still due; ``skip``: a slot run does not."""
    misfire_grace_seconds: float
    runs_dir: Path
    """Where the runs' scratch directories are."""


class RunRecovery:
    def __init__(
        self,
        *,
        store: Store,
        coordinator: RunCoordinator,
        executors: Callable[[], list[Executor]],
        datasets: Callable[[], DatasetManager],
        schedule_mode: ScheduleMode,
        settings: RecoverySettings,
    ) -> None:
        self.store = store
        self.coordinator = coordinator
        self._executors = executors
        self._datasets = datasets
        self.schedule_mode = schedule_mode
        self.settings = settings

    def recover(self) -> list[int]:
        """Runs left ``running`` become ``interrupted``, their containers are removed and the
        dataset worktrees reset. Runs left ``pending`` never started: those still due are
        queued again, oldest first; the others become ``interrupted`` with the reason (see
        :meth:`still_due`). Returns the interrupted ids."""
        store = self.store
        now = datetime.now(UTC)
        ids: list[int] = []
        resumed: list[int] = []
        for run in sorted(store.active_runs(), key=lambda r: r.id):
            if run.status == RunStatus.PENDING:
                reason, steps = self.still_due(run, now)
                if reason is None:
                    self.coordinator.requeue(run.id, run.pipeline, steps)
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
            removed = sum(engine.remove_run_containers(run_id) for engine in self._executors() for run_id in ids)
            log.info("removed %d left-over containers", removed)
        except MAOError as exc:
            log.warning("could not remove left-over containers: %s", exc.message)
        try:
            self._datasets().reset_worktrees(None)
        except MAOError as exc:
            log.warning("could not reset dataset worktrees: %s", exc.message)
        for run_id in ids:
            shutil.rmtree(self.settings.runs_dir / str(run_id), ignore_errors=True)
        return ids

    def still_due(self, run: Run, now: datetime) -> tuple[str | None, list[StepIn]]:
        """Whether a run that never started runs after a restart: None and its steps, or why not.

        It runs when it would have been run as a missed fire: its slot (an ad-hoc run: its
        creation) within ``misfire_grace_seconds``, and, for a slot run, ``misfire_policy``
        ``run_once`` and a schedule not in ``one`` mode (there the slot's claim decides who runs
        it, and it lapsed with the stop). Its pipeline must still have the steps it was
        recorded with."""
        settings = self.settings
        since = parse_slot(run.slot) if run.slot else as_utc(run.created_at)
        never = "never started: the orchestrator stopped while it was queued"
        if run.slot and settings.misfire_policy == "skip":
            return f"{never} (misfire_policy skip)", []
        if since is None or (now - since).total_seconds() > settings.misfire_grace_seconds:
            return f"{never}, longer than misfire_grace_seconds ago", []
        if run.slot and run.trigger == "cron" and self.schedule_mode(run.pipeline) == "one":
            return f"{never} (a one-mode slot: the claims decide who runs it)", []
        definition = self.store.find_pipeline(run.pipeline)
        if definition is None or [s.name for s in definition.steps] != [s.name for s in run.steps]:
            return f"{never}, and its pipeline was removed or changed since", []
        return None, definition.steps
