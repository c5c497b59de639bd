"""A durable queue of federation work, in the local store, done oldest first."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from mao.errors import MAOError, RegistryUnauthorized
from mao.offline.models import FederationTask
from mao.status import FederationState
from mao.store.models import StepRun, utcnow
from mao.store.store import Store

if TYPE_CHECKING:
    from mao.errors import RegistryUnavailable

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = FederationState.PENDING, FederationState.DONE, FederationState.FAILED


def task_note(store: Store, task: FederationTask) -> Callable[[str], None]:
    """A writer of lines in the log of the task's run (the process log for work of no run)."""
    step = (task.payload or {}).get("step")

    def note(line: str) -> None:
        if task.run_id is None:
            log.info("%s", line)
            return
        try:
            store.append_log(task.run_id, step, line)
        except MAOError:
            log.warning("could not store a log line of run %s: %s", task.run_id, line)

    return note


class FederationQueue:
    def __init__(self, store: Store) -> None:
        self.store = store

    def enqueue(self, kind: str, payload: dict[str, Any], run_id: int | None = None, step_id: int | None = None) -> int:
        with self.store.session() as s:
            task = FederationTask(kind=kind, payload=payload, run_id=run_id, step_id=step_id, attempts=0)
            s.add(task)
            s.flush()
            return task.id

    def defer(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        run_id: int | None,
        step_id: int | None,
        reason: RegistryUnavailable,
    ) -> int:
        """Queue ``kind`` work for when the registry answers again; mark the step as waiting for it."""
        task_id = self.enqueue(kind, payload, run_id=run_id, step_id=step_id)
        previous = self.store.get_run(run_id).steps if run_id is not None else []
        tasks = next((list((s.details or {}).get("federation_tasks", [])) for s in previous if s.id == step_id), [])
        self.mark_step(step_id, federation=PENDING, federation_tasks=[*tasks, task_id])
        refused = isinstance(reason, RegistryUnauthorized)
        what = "the registry refused this instance's etcd credentials" if refused else "the registry is unavailable"
        log.log(
            logging.ERROR if refused else logging.WARNING,
            "%s: %s of run %s deferred (task %s): %s",
            what,
            kind,
            run_id,
            task_id,
            reason.message,
        )
        if run_id is not None:
            task_note(self.store, FederationTask(run_id=run_id, payload=payload))(
                f"{what} ({reason.message}); {kind} deferred: "
                f"federation pending (task {task_id}), replayed when the registry answers again"
            )
        return task_id

    def pending(self, limit: int = 100) -> list[FederationTask]:
        """Tasks not done yet, oldest first."""
        with self.store.session() as s:
            q = select(FederationTask).where(FederationTask.done_at.is_(None)).order_by(FederationTask.id).limit(limit)
            return list(s.scalars(q))

    def count_pending(self) -> int:
        with self.store.session() as s:
            return (
                s.scalar(select(func.count()).select_from(FederationTask).where(FederationTask.done_at.is_(None))) or 0
            )

    def pending_for_step(self, step_id: int) -> int:
        with self.store.session() as s:
            q = (
                select(func.count())
                .select_from(FederationTask)
                .where(FederationTask.step_id == step_id, FederationTask.done_at.is_(None))
            )
            return s.scalar(q) or 0

    def get(self, task_id: int) -> FederationTask | None:
        with self.store.session() as s:
            return s.get(FederationTask, task_id)

    def for_run(self, run_id: int) -> list[FederationTask]:
        with self.store.session() as s:
            return list(
                s.scalars(select(FederationTask).where(FederationTask.run_id == run_id).order_by(FederationTask.id))
            )

    def done(self, task_id: int, error: str | None = None, *, attempt: bool = True) -> None:
        """Close a task; ``attempt`` counts the call that closed it as one more attempt."""
        with self.store.session() as s:
            values: dict[str, Any] = {"done_at": utcnow()}
            if attempt:
                values["attempts"] = FederationTask.attempts + 1
            if error is not None:
                values["last_error"] = error
            s.execute(update(FederationTask).where(FederationTask.id == task_id).values(**values))

    def failed_attempt(self, task_id: int, error: str) -> int:
        """Record a failed attempt; returns the number of attempts so far."""
        with self.store.session() as s:
            s.execute(
                update(FederationTask)
                .where(FederationTask.id == task_id)
                .values(attempts=FederationTask.attempts + 1, last_error=error[:2000])
            )
            return s.scalar(select(FederationTask.attempts).where(FederationTask.id == task_id)) or 0

    def mark_step(self, step_id: int | None, **details: Any) -> None:
        """Merge ``details`` into the step's details (``{"federation": "pending"}`` and the like)."""
        if step_id is None:
            return
        with self.store.session() as s:
            step = s.get(StepRun, step_id)
            if step is not None:
                step.details = {**(step.details or {}), **details}
