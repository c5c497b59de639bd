"""What each trigger has seen and fired for, kept in the local store so that a restart
neither fires again for an old change nor misses one made while the instance was down;
and :func:`due`, the decision (debounce, any-of/all-of) made from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from mao.models import TriggerIn
from mao.store.store import Store, as_utc
from mao.triggers.models import TriggerHead


@dataclass(frozen=True)
class Head:
    """One watched dataset of one pipeline, as the store has it."""

    dataset: str
    seen_commit: str | None = None
    seen_at: datetime | None = None
    fired_commit: str | None = None
    fired_at: datetime | None = None
    last_run_id: int | None = None

    @property
    def moved(self) -> bool:
        """``ground-truth`` has moved since the last triggered run."""
        return self.seen_commit is not None and self.seen_commit != self.fired_commit

    @property
    def change(self) -> str:
        return f"{self.dataset}@{self.seen_commit}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "seen_commit": self.seen_commit,
            "seen_at": self.seen_at.isoformat() if self.seen_at else None,
            "fired_commit": self.fired_commit,
            "fired_at": self.fired_at.isoformat() if self.fired_at else None,
            "last_run_id": self.last_run_id,
            "pending": self.moved,
        }


def due(trigger: TriggerIn, heads: dict[str, Head], now: datetime) -> list[Head] | None:
    """The moved heads a run is due for now, or None. ``any``: one of the datasets moved;
    ``all``: each of them did. The run waits until ``debounce`` seconds have passed since
    the newest move, so a burst of changes makes one run (for the newest commits)."""
    moved = [heads[d] for d in trigger.datasets if d in heads and heads[d].moved]
    if not moved or (trigger.mode == "all" and len(moved) < len(trigger.datasets)):
        return None
    newest = max((h.seen_at for h in moved if h.seen_at is not None), default=None)
    if newest is not None and now - newest < timedelta(seconds=trigger.debounce):
        return None
    return moved


def _head(row: TriggerHead) -> Head:
    return Head(
        row.dataset, row.seen_commit, as_utc(row.seen_at), row.fired_commit, as_utc(row.fired_at), row.last_run_id
    )


class TriggerHeads:
    """The ``trigger_heads`` table of the local store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def heads(self, pipeline: str) -> dict[str, Head]:
        with self.store.session() as s:
            rows = s.scalars(select(TriggerHead).where(TriggerHead.pipeline == pipeline))
            return {row.dataset: _head(row) for row in rows}

    def observe(self, pipeline: str, seen: dict[str, str | None], now: datetime | None = None) -> dict[str, Head]:
        """Record the commits ``seen`` on the remotes (dataset → commit, None: no ground-truth
        yet). A dataset seen for the first time is the baseline (nothing to run for: its
        history is not a change); a commit that differs from the last seen one is a move,
        dated now. Returns the pipeline's heads."""
        now = now or datetime.now(UTC)
        with self.store.session() as s:
            rows = {row.dataset: row for row in s.scalars(select(TriggerHead).where(TriggerHead.pipeline == pipeline))}
            for dataset, commit in seen.items():
                row = rows.get(dataset)
                if row is None:
                    row = rows[dataset] = TriggerHead(
                        pipeline=pipeline, dataset=dataset, seen_commit=commit, fired_commit=commit, seen_at=now
                    )
                    s.add(row)
                elif commit is not None and commit != row.seen_commit:
                    row.seen_commit, row.seen_at = commit, now
            s.flush()
            return {dataset: _head(row) for dataset, row in rows.items()}

    def fired(self, pipeline: str, heads: list[Head], run_id: int | None, now: datetime | None = None) -> None:
        """A run was recorded (or, in ``one`` mode, claimed elsewhere) for ``heads``' commits."""
        now = now or datetime.now(UTC)
        with self.store.session() as s:
            for head in heads:
                row = s.get(TriggerHead, (pipeline, head.dataset))
                if row is not None:
                    row.fired_commit, row.fired_at, row.last_run_id = head.seen_commit, now, run_id
