"""The attempts of a step's container (:class:`~mao.store.models.StepAttempt`): one row per
run of the container, written when it ends; read with the step's row (``StepRun.attempts``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from mao.status import RunStatus
from mao.store.models import StepAttempt

if TYPE_CHECKING:
    from mao.store.store import Store


@dataclass(frozen=True)
class AttemptEnd:
    """How one attempt of a step's container ended."""

    number: int
    status: RunStatus
    exit_code: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime
    duration_s: float
    retry_delay_s: float | None = None
    """Seconds until the next attempt; None: this was the last."""


class AttemptRows:
    """The one writer of attempt rows."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, step_id: int, end: AttemptEnd) -> None:
        with self.store.session() as s:
            s.add(
                StepAttempt(
                    step_id=step_id,
                    number=end.number,
                    status=RunStatus(end.status).value,
                    exit_code=end.exit_code,
                    error=end.error,
                    started_at=end.started_at,
                    finished_at=end.finished_at,
                    duration_s=end.duration_s,
                    retry_delay_s=end.retry_delay_s,
                )
            )
