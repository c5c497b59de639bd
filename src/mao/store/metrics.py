"""Control metrics in the local store: each value a step's tool reported, per run, step and slot.

A series is one pipeline/step/metric, ordered by slot, then time (:attr:`MetricValue.series_key`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mao.status import RunStatus
from mao.store.models import MetricValue, Run, utcnow
from mao.store.store import Store, as_utc

SERIES_KEY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def series_key(slot: str | None, at: datetime) -> str:
    """Where a value sorts in its series: its slot, or for a run without one, its time."""
    return slot or at.strftime(SERIES_KEY_FORMAT)


class MetricStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(
        self,
        run_id: int,
        pipeline: str,
        step: str,
        slot: str | None,
        values: Mapping[str, float],
        suspect: set[str] | frozenset[str] = frozenset(),
        at: datetime | None = None,
    ) -> None:
        """Keep a step's metric values; the names in ``suspect`` broke their rule."""
        at = at or utcnow()
        key = series_key(slot, at)
        with self.store.session() as s:
            for name, value in values.items():
                s.add(
                    MetricValue(
                        run_id=run_id,
                        pipeline=pipeline,
                        step=step,
                        metric=name,
                        value=float(value),
                        slot=slot,
                        series_key=key,
                        suspect=name in suspect,
                        recorded_at=at,
                    )
                )

    def earlier_many(
        self,
        pipeline: str,
        step: str,
        windows: Mapping[str, int],
        run_id: int,
        slot: str | None,
        at: datetime | None = None,
    ) -> dict[str, list[float]]:
        """For each metric of ``windows`` (name -> how many values), up to that many values of
        its series before the run ``run_id`` (for ``slot``, or recorded now), from succeeded
        runs only, oldest first; in one transaction.

        One indexed query per metric, each reading at most its window: the cost does not grow
        with the length of the series."""
        key = series_key(slot, at or utcnow())
        out: dict[str, list[float]] = {name: [] for name in windows}
        wanted = {name: limit for name, limit in windows.items() if limit > 0}
        if not wanted:
            return out
        with self.store.session() as s:
            for name, limit in wanted.items():
                q = (
                    select(MetricValue.value)
                    .join(Run, Run.id == MetricValue.run_id)
                    .where(
                        MetricValue.pipeline == pipeline,
                        MetricValue.step == step,
                        MetricValue.metric == name,
                        MetricValue.series_key <= key,
                        MetricValue.run_id != run_id,
                        Run.status == RunStatus.SUCCEEDED.value,
                    )
                    .order_by(MetricValue.series_key.desc(), MetricValue.id.desc())
                    .limit(limit)
                )
                out[name] = list(reversed(list(s.scalars(q))))
        return out

    def series(
        self, pipeline: str, step: str | None = None, metric: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The last ``limit`` values of a pipeline (of one step, one metric), oldest first."""
        with self.store.session() as s:
            q = select(MetricValue).where(MetricValue.pipeline == pipeline)
            if step:
                q = q.where(MetricValue.step == step)
            if metric:
                q = q.where(MetricValue.metric == metric)
            rows = list(s.scalars(q.order_by(MetricValue.series_key.desc(), MetricValue.id.desc()).limit(limit)))
        return [
            {
                "run_id": row.run_id,
                "step": row.step,
                "metric": row.metric,
                "value": row.value,
                "slot": row.slot,
                "recorded_at": recorded.isoformat() if (recorded := as_utc(row.recorded_at)) else None,
                "suspect": row.suspect,
            }
            for row in reversed(rows)
        ]
