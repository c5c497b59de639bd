"""The instance-local store: pipelines, runs, step runs, logs and private variables
(encrypted with keys kept outside the database, see :mod:`mao.store.secrets`).

Pipelines come out as :class:`~mao.store.records.PipelineRecord` models; a run's and a
step's status only ever moves along :data:`mao.status.TRANSITIONS`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mao.errors import AlreadyExists, Conflict, MAOError, NotFound, StoreError, map_errors
from mao.models import StepIn, TriggerIn
from mao.status import ACTIVE, TRANSITIONS, RunStatus, check_transition
from mao.store.db import migrate, sqlite_file
from mao.store.files import private_sqlite
from mao.store.models import LogLine, Pipeline, PrivateVariable, Run, StepRun, utcnow
from mao.store.records import OVERLAP_POLICIES, PipelineRecord, RecordedRun, RunRequest, as_steps, dump_steps
from mao.store.secrets import PREFIX, Cipher, SecretKeys, is_sealed
from mao.untrusted import cap_line

log = logging.getLogger(__name__)

_ACTIVE = [s.value for s in ACTIVE]


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _record(row: Pipeline) -> PipelineRecord:
    return PipelineRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        steps=as_steps(row.steps),
        trigger=TriggerIn.model_validate(row.trigger) if row.trigger else None,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def _label(row: PrivateVariable) -> str:
    return f"{row.pipeline}/{row.name}"


def _predecessors(target: RunStatus) -> list[str]:
    return [state.value for state, nexts in TRANSITIONS.items() if target in nexts]


@dataclass
class _Ahead:
    """A run pending or running when a new one of its pipeline is recorded."""

    run_id: int | None
    status: str
    slot: str | None
    recorded: RecordedRun | None = None
    """Set for a run recorded in the same call (its id comes with the insert)."""


def _describe_active(run_id: int | None, status: str, slot: str | None) -> str:
    """``run 12 (slot 2026-11-28T12:00:00Z) is queued``: the run in the way, as its state says."""
    what = "is queued (pending)" if status == RunStatus.PENDING.value else f"is {status}"
    return f"run {run_id}" + (f" (slot {slot})" if slot else "") + f" {what}"


@dataclass
class Rotation:
    """What ``rotate_secrets_key`` did."""

    key_file: Path
    resealed: int
    dropped: list[str]
    old_keys: int
    """Keys the key file held before."""
    kept_old: int
    """Old keys left in the key file after the new one."""


class Store:
    def __init__(self, engine: Engine, secrets: SecretKeys | None = None) -> None:
        self.engine = engine
        self.secrets = secrets
        """The key file of the private variables (None: this store cannot read or write them)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._cipher: Cipher | None = None
        self._cipher_lock = threading.Lock()

    def migrate(self) -> None:
        migrate(self.engine)

    def setup(self) -> None:
        """Bring the schema up to date, make a SQLite database and its files private (0600),
        and, with a key file, encrypt the private variables still stored in plain text and
        check that the key decrypts every other one (StoreError saying what to do if not)."""
        self.migrate()
        if database := sqlite_file(self.engine.url.render_as_string(hide_password=False)):
            private_sqlite(database)
        if self.secrets is not None:
            self.seal_private_variables()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def where(self) -> str:
        return f"the local store at {self.engine.url.render_as_string(hide_password=True)}"

    @contextmanager
    def session(self, *, error: type[MAOError] | None = None, where: str | None = None) -> Iterator[Session]:
        """A transaction; database failures become StoreError, or ``error`` naming ``where``
        (IntegrityError is left to callers)."""
        with map_errors("store", where or self.where, keep=(IntegrityError,), error=error):
            session = self._sessions()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    def ping(self) -> None:
        with map_errors("store", self.where), self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    # pipelines -----------------------------------------------------------------

    def add_pipeline(
        self,
        name: str,
        description: str,
        steps: Iterable[StepIn | dict[str, Any]],
        trigger: TriggerIn | None = None,
    ) -> PipelineRecord:
        try:
            with self.session() as s:
                row = Pipeline(
                    name=name,
                    description=description,
                    steps=dump_steps(as_steps(steps)),
                    trigger=trigger.model_dump() if trigger is not None else None,
                )
                s.add(row)
                s.flush()
                return _record(row)
        except IntegrityError as exc:
            raise AlreadyExists(f"pipeline {name!r} already exists on this instance") from exc

    def get_pipeline(self, name: str) -> PipelineRecord:
        record = self.find_pipeline(name)
        if record is None:
            raise NotFound(f"pipeline {name!r} is not defined on this instance")
        return record

    def find_pipeline(self, name: str) -> PipelineRecord | None:
        with self.session() as s:
            row = s.scalar(select(Pipeline).where(Pipeline.name == name))
            return _record(row) if row is not None else None

    def list_pipelines(self) -> list[PipelineRecord]:
        with self.session() as s:
            return [_record(row) for row in s.scalars(select(Pipeline).order_by(Pipeline.name))]

    def delete_pipeline(self, name: str) -> None:
        with self.session() as s:
            if getattr(s.execute(delete(Pipeline).where(Pipeline.name == name)), "rowcount", 0) == 0:
                raise NotFound(f"pipeline {name!r} is not defined on this instance")
            s.execute(delete(PrivateVariable).where(PrivateVariable.pipeline == name))

    # private variables ---------------------------------------------------------

    def set_private_variable(self, pipeline: str, name: str, value: str) -> None:
        """Store ``value`` encrypted with the key file's first key."""
        sealed = self.cipher().seal(value)
        with self.session() as s:
            row = s.scalar(
                select(PrivateVariable).where(PrivateVariable.pipeline == pipeline, PrivateVariable.name == name)
            )
            if row is None:
                s.add(PrivateVariable(pipeline=pipeline, name=name, value=sealed))
            else:
                row.value = sealed

    def private_variables(self, pipeline: str) -> dict[str, str]:
        """The pipeline's private variables, decrypted."""
        cipher = self.cipher()
        with self.session() as s:
            rows = list(s.scalars(select(PrivateVariable).where(PrivateVariable.pipeline == pipeline)))
        return {row.name: self._open(cipher, row) for row in rows}

    def private_variable_names(self, pipeline: str) -> list[str]:
        """The names of the pipeline's private variables (nothing decrypted)."""
        with self.session() as s:
            query = select(PrivateVariable.name).where(PrivateVariable.pipeline == pipeline)
            return sorted(s.scalars(query))

    def cipher(self) -> Cipher:
        """The cipher of the key file, read once; a new key file when there is none and no
        value is encrypted yet."""
        with self._cipher_lock:
            if self._cipher is None:
                if self.secrets is None:
                    raise StoreError(
                        f"{self.where} was opened without the key of its private variables: open it with one"
                    )
                self._cipher = self.secrets.load(sealed=self._count_sealed())
            return self._cipher

    def seal_private_variables(self) -> int:
        """Encrypt every private variable stored in plain text (by a version before
        encryption at rest), in place; StoreError naming those the key does not decrypt, then
        nothing changes. Returns how many were encrypted: 0 the second time."""
        cipher = self.cipher()
        assert self.secrets is not None
        with self.session() as s:
            rows = list(s.scalars(select(PrivateVariable).order_by(PrivateVariable.id)))
            unreadable = [_label(row) for row in rows if is_sealed(row.value) and not cipher.opens(row.value)]
            if unreadable:
                raise self.secrets.unreadable(unreadable)
            plain = [row for row in rows if not is_sealed(row.value)]
            for row in plain:
                row.value = cipher.seal(row.value)
        if plain:
            log.warning(
                "encrypted %d private variables stored in plain text, with the key in %s", len(plain), self.secrets.path
            )
        return len(plain)

    def rotate_secrets_key(self, *, keep_old: bool = False, drop_unreadable: bool = False) -> Rotation:
        """A new first key in the key file, every private variable encrypted again with it;
        then the old keys are removed unless ``keep_old``. The key file holds the new and the
        old keys before any value changes, so a stop half-way loses nothing.

        Values no key decrypts (or any, when the key file is missing) are a StoreError naming
        them, unless ``drop_unreadable``: then they are deleted, to be set again. Only while no
        orchestrator uses this store (the caller holds the data directory's lock)."""
        if self.secrets is None:
            raise StoreError(f"{self.where} was opened without the key of its private variables: open it with one")
        keys = self.secrets
        with self._cipher_lock, self.session() as s:
            rows = list(s.scalars(select(PrivateVariable).order_by(PrivateVariable.id)))
            sealed = [row for row in rows if is_sealed(row.value)]
            old: list[bytes] = []
            if keys.exists():
                old = keys.read()
            elif sealed and not drop_unreadable:
                raise keys.missing(len(sealed))
            ring = Cipher([Fernet.generate_key(), *old])
            lost = {row.id for row in sealed if not ring.opens(row.value)}
            dropped = [_label(row) for row in rows if row.id in lost]
            if dropped and not drop_unreadable:
                raise keys.unreadable(dropped)
            keys.write(ring.keys)
            self._cipher = None
            for row in rows:
                if row.id in lost:
                    s.delete(row)
                else:
                    row.value = ring.reseal(row.value)
        if not keep_old:
            keys.write(ring.keys[:1])
        for label in dropped:
            log.info("private variable %s deleted: no key decrypts it; set it again", label)
        return Rotation(keys.path, len(rows) - len(dropped), dropped, len(old), len(old) if keep_old else 0)

    def _count_sealed(self) -> int:
        with self.session() as s:
            query = select(PrivateVariable.value).where(PrivateVariable.value.startswith(PREFIX, autoescape=True))
            return sum(1 for value in s.scalars(query) if is_sealed(value))

    def _open(self, cipher: Cipher, row: PrivateVariable) -> str:
        if not is_sealed(row.value):
            return row.value  # stored before encryption at rest; encrypted at the next start
        try:
            return cipher.open(row.value)
        except InvalidToken:
            assert self.secrets is not None
            raise self.secrets.unreadable([_label(row)]) from None

    # runs ------------------------------------------------------------------------

    def create_run(
        self, pipeline: str, steps: Iterable[StepIn | dict[str, Any]], trigger: str = "manual", slot: str | None = None
    ) -> Run:
        """A run and its step rows, all pending. Refuses if the pipeline has an active run."""
        models = as_steps(steps)
        with self.session() as s:
            active = s.scalar(
                select(func.count()).select_from(Run).where(Run.pipeline == pipeline, Run.status.in_(_ACTIVE))
            )
            if active:
                raise Conflict(f"pipeline {pipeline!r} already has a run in progress")
            run = Run(pipeline=pipeline, status=RunStatus.PENDING.value, trigger=trigger, slot=slot)
            for position, step in enumerate(models):
                run.steps.append(
                    StepRun(
                        position=position,
                        name=step.name,
                        tool=step.tool,
                        input_dataset=step.input_dataset,
                        output_dataset=step.output_dataset,
                        status=RunStatus.PENDING.value,
                    )
                )
            s.add(run)
            s.flush()
            s.refresh(run, ["steps"])
            return run

    def create_runs(
        self, requests: Sequence[RunRequest], overlap: str = "refuse", max_queued: int = 10
    ) -> list[RecordedRun]:
        """Record runs, all ``pending`` with their step rows, in one transaction: a burst of
        scheduler fires costs one commit, not one each.

        A request whose pipeline has a run pending or running (stored, or recorded earlier in
        this call) is handled per ``overlap``: ``skip`` and ``refuse`` record nothing (a
        Conflict naming that run), ``queue`` records it behind, unless ``max_queued`` runs of
        the pipeline are pending already. An undefined pipeline records nothing (NotFound).
        Callers serialise calls (one process records runs; the runner holds a lock)."""
        if overlap not in OVERLAP_POLICIES:
            raise ValueError(f"unknown overlap policy {overlap!r}")
        if not requests:
            return []
        with self.session() as s:
            definitions, ahead = self._overlap_state(s, sorted({r.pipeline for r in requests}))
            results: list[RecordedRun] = []
            new: list[RecordedRun] = []
            behind: list[tuple[RecordedRun, _Ahead]] = []
            for request in requests:
                steps = definitions.get(request.pipeline)
                if steps is None:
                    missing = NotFound(f"pipeline {request.pipeline!r} is not defined on this instance")
                    results.append(RecordedRun(request, "skipped", error=missing))
                    continue
                before = ahead.setdefault(request.pipeline, [])
                queued = sum(1 for entry in before if entry.status == RunStatus.PENDING.value)
                if before and overlap == "queue" and queued >= max_queued:
                    full = Conflict(
                        f"pipeline {request.pipeline!r} already has {queued} runs queued (max_queued_runs {max_queued})"
                    )
                    results.append(RecordedRun(request, "skipped", error=full))
                    continue
                if before and overlap != "queue":
                    result = RecordedRun(request, "skipped")
                else:
                    result = RecordedRun(request, "queued" if before else "started", steps=steps)
                if before:
                    behind.append((result, before[-1]))
                if result.outcome != "skipped":
                    before.append(_Ahead(None, RunStatus.PENDING.value, request.slot, result))
                    new.append(result)
                results.append(result)
            if new:
                self._insert_runs(s, new)
            for result, entry in behind:
                result.blocking = entry.run_id if entry.recorded is None else entry.recorded.run_id
                if result.outcome == "skipped":
                    result.error = Conflict(
                        f"pipeline {result.request.pipeline!r} already has a run in progress: "
                        + _describe_active(result.blocking, entry.status, entry.slot)
                    )
            return results

    @staticmethod
    def _overlap_state(s: Session, names: list[str]) -> tuple[dict[str, list[StepIn]], dict[str, list[_Ahead]]]:
        """The steps of each named pipeline, and its runs pending or running, oldest first."""
        definitions: dict[str, list[StepIn]] = {}
        ahead: dict[str, list[_Ahead]] = {}
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            for name, steps in s.execute(select(Pipeline.name, Pipeline.steps).where(Pipeline.name.in_(chunk))):
                definitions[name] = as_steps(steps)
            query = (
                select(Run.id, Run.pipeline, Run.status, Run.slot)
                .where(Run.pipeline.in_(chunk), Run.status.in_(_ACTIVE))
                .order_by(Run.id)
            )
            for run_id, pipeline, status, slot in s.execute(query):
                ahead.setdefault(pipeline, []).append(_Ahead(run_id, status, slot))
        return definitions, ahead

    @staticmethod
    def _insert_runs(s: Session, new: list[RecordedRun]) -> None:
        """The runs and their step rows: two statements, however many runs."""
        now = utcnow()
        rows = [
            {
                "pipeline": r.request.pipeline,
                "status": RunStatus.PENDING.value,
                "trigger": r.request.trigger,
                "slot": r.request.slot,
                "trigger_changes": list(r.request.changes) or None,
                "created_at": now,
            }
            for r in new
        ]
        ids = s.scalars(insert(Run).returning(Run.id, sort_by_parameter_order=True), rows).all()
        step_rows: list[dict[str, Any]] = []
        for result, run_id in zip(new, ids, strict=True):
            result.run_id, result.created_at = run_id, now
            step_rows.extend(
                {
                    "run_id": run_id,
                    "position": position,
                    "name": step.name,
                    "tool": step.tool,
                    "input_dataset": step.input_dataset,
                    "output_dataset": step.output_dataset,
                    "status": RunStatus.PENDING.value,
                }
                for position, step in enumerate(result.steps)
            )
        if step_rows:
            s.execute(insert(StepRun), step_rows)

    def get_run(self, run_id: int) -> Run:
        with self.session() as s:
            run = s.scalar(select(Run).where(Run.id == run_id).options(selectinload(Run.steps)))
            if run is None:
                raise NotFound(f"run {run_id} does not exist")
            return run

    def list_runs(
        self, pipeline: str | None = None, status: RunStatus | str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Run]:
        """Newest first; ``offset`` skips that many of the newest (paging)."""
        with self.session() as s:
            q = select(Run).options(selectinload(Run.steps)).order_by(Run.id.desc()).limit(limit).offset(offset)
            if pipeline:
                q = q.where(Run.pipeline == pipeline)
            if status:
                q = q.where(Run.status == RunStatus(status).value)
            return list(s.scalars(q))

    def count_runs(self) -> list[tuple[str, str, int]]:
        """(pipeline, status, number of runs) for every pair present: one GROUP BY."""
        with self.session() as s:
            q = select(Run.pipeline, Run.status, func.count()).group_by(Run.pipeline, Run.status)
            return [(pipeline, status, int(n)) for pipeline, status, n in s.execute(q)]

    def update_run(self, run_id: int, **values: Any) -> None:
        """Set fields of a run; a ``status`` must be an allowed transition (IllegalTransition if not)."""
        with self.session() as s:
            self._update(s, Run, run_id, f"run {run_id}", values)

    def update_step(self, step_id: int, **values: Any) -> None:
        with self.session() as s:
            self._update(s, StepRun, step_id, f"step run {step_id}", values)

    @staticmethod
    def _update(s: Session, table: type[Run | StepRun], row_id: int, what: str, values: dict[str, Any]) -> None:
        query = update(table).where(table.id == row_id)
        if "status" in values:
            target = RunStatus(values["status"])
            values = {**values, "status": target.value}
            query = query.where(table.status.in_(_predecessors(target)))
        if getattr(s.execute(query.values(**values)), "rowcount", 0):
            return
        current = s.scalar(select(table.status).where(table.id == row_id))
        if current is None:
            raise NotFound(f"{what} does not exist")
        check_transition(current, values["status"], what)

    def finish_run(self, run_id: int, status: RunStatus | str, error: str | None = None) -> None:
        """Close a run and any of its steps still pending or running. Closing a run again
        with the status it already has does nothing, so a retried close is harmless."""
        target = RunStatus(status)
        if not target.terminal:
            raise ValueError(f"finish_run needs a terminal status, not {target}")
        now = utcnow()
        with self.session() as s:
            current = s.scalar(select(Run.status).where(Run.id == run_id))
            if current is None:
                raise NotFound(f"run {run_id} does not exist")
            if current == target:
                return
            check_transition(current, target, f"run {run_id}")
            s.execute(update(Run).where(Run.id == run_id).values(status=target.value, error=error, finished_at=now))
            step_status = target if target in TRANSITIONS[RunStatus.RUNNING] else RunStatus.FAILED
            s.execute(
                update(StepRun)
                .where(StepRun.run_id == run_id, StepRun.status == RunStatus.RUNNING.value)
                .values(status=step_status.value, finished_at=now)
            )
            s.execute(
                update(StepRun)
                .where(StepRun.run_id == run_id, StepRun.status == RunStatus.PENDING.value)
                .values(status=RunStatus.CANCELLED.value)
            )

    def has_active_run(self, pipeline: str) -> bool:
        with self.session() as s:
            query = select(Run.id).where(Run.pipeline == pipeline, Run.status.in_(_ACTIVE)).limit(1)
            return s.scalar(query) is not None

    def active_runs(self) -> list[Run]:
        with self.session() as s:
            return list(s.scalars(select(Run).where(Run.status.in_(_ACTIVE)).options(selectinload(Run.steps))))

    def mark_interrupted(self) -> list[int]:
        """Runs left pending/running by a crash become ``interrupted``. Returns their ids."""
        ids = [run.id for run in self.active_runs()]
        for run_id in ids:
            self.finish_run(run_id, RunStatus.INTERRUPTED, "the orchestrator stopped while this run was in progress")
        return ids

    # logs ------------------------------------------------------------------------

    def append_log(self, run_id: int, step: str | None, line: str) -> None:
        self.append_logs([(run_id, step, line)])

    def append_logs(self, lines: Iterable[tuple[Any, ...]]) -> None:
        """Store log lines ``(run_id, step, line)`` or ``(run_id, step, line, attempt)``, in
        order, in one transaction; a line over :data:`~mao.untrusted.MAX_LOG_LINE_BYTES` is
        cut, with a note of its size."""
        rows = [
            LogLine(
                run_id=entry[0], step=entry[1], line=cap_line(entry[2]), attempt=entry[3] if len(entry) > 3 else None
            )
            for entry in lines
        ]
        if not rows:
            return
        with self.session() as s:
            s.add_all(rows)

    def logs(
        self,
        run_id: int,
        after: int = 0,
        step: str | None = None,
        limit: int = 10000,
        before: int | None = None,
        tail: bool = False,
    ) -> list[LogLine]:
        """A run's log lines with ``after < id < before``, in order: the first ``limit`` of
        them, or with ``tail`` the last ``limit``."""
        with self.session() as s:
            q = select(LogLine).where(LogLine.run_id == run_id, LogLine.id > after)
            if before is not None:
                q = q.where(LogLine.id < before)
            if step:
                q = q.where(LogLine.step == step)
            if tail:
                return list(reversed(s.scalars(q.order_by(LogLine.id.desc()).limit(limit)).all()))
            return list(s.scalars(q.order_by(LogLine.id).limit(limit)))

    def has_logs(self, run_id: int, step: str | None = None, *, below: int | None = None, above: int = 0) -> bool:
        """Whether the run has log lines with ``above < id < below`` (of ``step`` if given)."""
        with self.session() as s:
            q = select(LogLine.id).where(LogLine.run_id == run_id, LogLine.id > above)
            if below is not None:
                q = q.where(LogLine.id < below)
            if step:
                q = q.where(LogLine.step == step)
            return s.scalars(q.limit(1)).first() is not None
