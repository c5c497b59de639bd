"""The instance-local store: pipelines, runs, step runs, logs and private variables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mao.errors import AlreadyExists, NotFound, StoreError
from mao.store.db import migrate
from mao.store.models import LogLine, Pipeline, PrivateVariable, Run, StepRun, utcnow

ACTIVE = ("pending", "running")
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled", "interrupted", "conflict")


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except IntegrityError:
            session.rollback()
            raise
        except (OperationalError, SQLAlchemyError) as exc:
            session.rollback()
            if isinstance(exc, OperationalError):
                raise StoreError(f"the local store at {self.engine.url!r} failed: {exc.orig}") from exc
            raise
        finally:
            session.close()

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise StoreError(f"the local store at {self.engine.url!r} cannot be reached: {exc}") from exc

    # pipelines -----------------------------------------------------------------

    def add_pipeline(self, name: str, description: str, steps: list[dict[str, Any]]) -> Pipeline:
        try:
            with self.session() as s:
                row = Pipeline(name=name, description=description, steps=steps)
                s.add(row)
                s.flush()
                return row
        except IntegrityError as exc:
            raise AlreadyExists(f"pipeline {name!r} already exists on this instance") from exc

    def get_pipeline(self, name: str) -> Pipeline:
        with self.session() as s:
            row = s.scalar(select(Pipeline).where(Pipeline.name == name))
            if row is None:
                raise NotFound(f"pipeline {name!r} is not defined on this instance")
            return row

    def find_pipeline(self, name: str) -> Pipeline | None:
        with self.session() as s:
            return s.scalar(select(Pipeline).where(Pipeline.name == name))

    def list_pipelines(self) -> list[Pipeline]:
        with self.session() as s:
            return list(s.scalars(select(Pipeline).order_by(Pipeline.name)))

    def delete_pipeline(self, name: str) -> None:
        with self.session() as s:
            if s.execute(delete(Pipeline).where(Pipeline.name == name)).rowcount == 0:
                raise NotFound(f"pipeline {name!r} is not defined on this instance")
            s.execute(delete(PrivateVariable).where(PrivateVariable.pipeline == name))

    # private variables ---------------------------------------------------------

    def set_private_variable(self, pipeline: str, name: str, value: str) -> None:
        with self.session() as s:
            row = s.scalar(
                select(PrivateVariable).where(PrivateVariable.pipeline == pipeline, PrivateVariable.name == name)
            )
            if row is None:
                s.add(PrivateVariable(pipeline=pipeline, name=name, value=value))
            else:
                row.value = value

    def private_variables(self, pipeline: str) -> dict[str, str]:
        with self.session() as s:
            rows = s.scalars(select(PrivateVariable).where(PrivateVariable.pipeline == pipeline))
            return {r.name: r.value for r in rows}

    # runs ------------------------------------------------------------------------

    def create_run(
        self, pipeline: str, steps: list[dict[str, Any]], trigger: str = "manual", slot: str | None = None
    ) -> Run:
        """A run and its step rows, all pending. Refuses if the pipeline has an active run."""
        with self.session() as s:
            active = s.scalar(
                select(func.count()).select_from(Run).where(Run.pipeline == pipeline, Run.status.in_(ACTIVE))
            )
            if active:
                from mao.errors import Conflict

                raise Conflict(f"pipeline {pipeline!r} already has a run in progress")
            run = Run(pipeline=pipeline, status="pending", trigger=trigger, slot=slot)
            for position, step in enumerate(steps):
                run.steps.append(
                    StepRun(
                        position=position,
                        name=step["name"],
                        tool=step["tool"],
                        input_dataset=step.get("input_dataset"),
                        output_dataset=step.get("output_dataset"),
                        status="pending",
                    )
                )
            s.add(run)
            s.flush()
            s.refresh(run, ["steps"])
            return run

    def get_run(self, run_id: int) -> Run:
        with self.session() as s:
            run = s.scalar(select(Run).where(Run.id == run_id).options(selectinload(Run.steps)))
            if run is None:
                raise NotFound(f"run {run_id} does not exist")
            return run

    def list_runs(self, pipeline: str | None = None, status: str | None = None, limit: int = 50) -> list[Run]:
        with self.session() as s:
            q = select(Run).options(selectinload(Run.steps)).order_by(Run.id.desc()).limit(limit)
            if pipeline:
                q = q.where(Run.pipeline == pipeline)
            if status:
                q = q.where(Run.status == status)
            return list(s.scalars(q))

    def update_run(self, run_id: int, **values: Any) -> None:
        with self.session() as s:
            s.execute(update(Run).where(Run.id == run_id).values(**values))

    def update_step(self, step_id: int, **values: Any) -> None:
        with self.session() as s:
            s.execute(update(StepRun).where(StepRun.id == step_id).values(**values))

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> None:
        """Close a run and any of its steps still pending or running."""
        now = utcnow()
        with self.session() as s:
            s.execute(update(Run).where(Run.id == run_id).values(status=status, error=error, finished_at=now))
            s.execute(
                update(StepRun)
                .where(StepRun.run_id == run_id, StepRun.status == "running")
                .values(status=status if status in TERMINAL else "failed", finished_at=now)
            )
            s.execute(
                update(StepRun)
                .where(StepRun.run_id == run_id, StepRun.status == "pending")
                .values(status="cancelled" if status != "succeeded" else "succeeded")
            )

    def active_runs(self) -> list[Run]:
        with self.session() as s:
            return list(s.scalars(select(Run).where(Run.status.in_(ACTIVE)).options(selectinload(Run.steps))))

    def mark_interrupted(self) -> list[int]:
        """Runs left pending/running by a crash become ``interrupted``. Returns their ids."""
        ids = [run.id for run in self.active_runs()]
        for run_id in ids:
            self.finish_run(run_id, "interrupted", "the orchestrator stopped while this run was in progress")
        return ids

    # logs ------------------------------------------------------------------------

    def append_log(self, run_id: int, step: str | None, line: str) -> None:
        with self.session() as s:
            s.add(LogLine(run_id=run_id, step=step, line=line))

    def logs(self, run_id: int, after: int = 0, step: str | None = None, limit: int = 10000) -> list[LogLine]:
        with self.session() as s:
            q = select(LogLine).where(LogLine.run_id == run_id, LogLine.id > after)
            if step:
                q = q.where(LogLine.step == step)
            return list(s.scalars(q.order_by(LogLine.id).limit(limit)))
