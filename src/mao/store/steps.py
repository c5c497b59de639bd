"""A step's row as the run writes it: its outcome (:class:`StepOutcome`), what it learned on
its way (:class:`StepRecord`) and the one writer of step rows (:class:`StepRows`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from mao.status import RunStatus
from mao.store.models import utcnow
from mao.store.store import Store


@dataclass(frozen=True)
class StepOutcome:
    status: RunStatus
    error: str | None = None


SUCCEEDED = StepOutcome(RunStatus.SUCCEEDED)


@dataclass
class StepRecord:
    """What a step learned on its way, stored with its end. A field left None is not written
    (the row keeps what it has); ``pushed`` False is written."""

    image: str | None = None
    output_branch: str | None = None
    input_commit: str | None = None
    exit_code: int | None = None
    image_digest: str | None = None
    output_commit: str | None = None
    merge_commit: str | None = None
    pushed: bool | None = None
    suspect: bool | None = None
    suspect_detail: str | None = None
    details: dict[str, Any] | None = None
    executor: str | None = None
    """The engine that ran the step's container."""
    node: str | None = None
    """The host it ran on, when the engine said."""

    def columns(self) -> dict[str, Any]:
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name)) is not None}


class StepRows:
    """The one writer of step rows: a step's start, its end with its record, and what its
    delivery learns after the end (a merge replayed once the registry answers)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def started(self, step_id: int) -> None:
        self.store.update_step(step_id, status=RunStatus.RUNNING, started_at=utcnow())

    def placed(self, step_id: int, executor: str, state: str, node: str | None, job: str | None) -> None:
        """Where the engine put the step (``state``: ``queued`` or ``running``), as it said last."""
        self.store.update_step(step_id, executor=executor, placement=state, node=node, job=job)

    def finished(self, step_id: int, outcome: StepOutcome, record: StepRecord) -> None:
        self._write(step_id, record, status=outcome.status, error=outcome.error, finished_at=utcnow())

    def learned(self, step_id: int, record: StepRecord) -> None:
        self._write(step_id, record)

    def _write(self, step_id: int, record: StepRecord, **end: Any) -> None:
        self.store.update_step(step_id, **end, **record.columns())
