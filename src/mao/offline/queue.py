"""A durable queue of federation work, in the local store, done oldest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from mao.offline.models import FederationTask
from mao.status import FederationState
from mao.store.models import StepRun, utcnow
from mao.store.store import Store

PENDING, DONE, FAILED = FederationState.PENDING, FederationState.DONE, FederationState.FAILED


class FederationQueue:
    def __init__(self, store: Store) -> None:
        self.store = store

    def enqueue(self, kind: str, payload: dict[str, Any], run_id: int | None = None, step_id: int | None = None) -> int:
        with self.store.session() as s:
            task = FederationTask(kind=kind, payload=payload, run_id=run_id, step_id=step_id, attempts=0)
            s.add(task)
            s.flush()
            return task.id

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
