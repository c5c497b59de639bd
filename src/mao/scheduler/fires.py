"""What becomes of each scheduler fire: its run recorded (``started`` or ``queued``) or the
fire ``skipped``, counted per schedule (in the local store: the counts survive a restart)
and published as ``schedule.fired``.

A fire only hands its pipeline and slot to the :class:`FireRecorder`; one thread records
the runs of all fires waiting, in one store transaction (a thousand schedules firing on
the same minute cost a few commits, not a thousand), and queues them for the runner's
workers. Execution is separate: a fire never waits for a run, nor for a free worker.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, select

from mao.errors import Conflict, MAOError
from mao.events import EventBus, ScheduleFired
from mao.loop import LoopService
from mao.scheduler.models import FireCount
from mao.store.models import utcnow
from mao.store.records import RecordedRun, RunRequest

if TYPE_CHECKING:
    from mao.store.store import Store

log = logging.getLogger(__name__)

OUTCOMES = ("started", "queued", "skipped")
BATCH = 1000
"""Most fires recorded in one transaction."""


@dataclass(frozen=True)
class Fire:
    pipeline: str
    slot: str | None
    scheduled_for: datetime
    """The fire time the run is for (its slot), however late it is handled."""


def _zero() -> dict[str, Any]:
    return {name: 0 for name in OUTCOMES} | {"last_skip": None}


class FireCountStore:
    """Fire counts in the instance-local store, one row per schedule."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self) -> dict[str, dict[str, Any]]:
        with self.store.session() as s:
            rows = s.scalars(select(FireCount)).all()
            return {
                row.pipeline: {"started": row.started, "queued": row.queued, "skipped": row.skipped}
                | {"last_skip": row.last_skip}
                for row in rows
            }

    def save(self, counts: dict[str, dict[str, Any]]) -> None:
        """Write the counts of these schedules, in one transaction."""
        with self.store.session() as s:
            rows = {row.pipeline: row for row in s.scalars(select(FireCount).where(FireCount.pipeline.in_(counts)))}
            for pipeline, values in counts.items():
                row = rows.get(pipeline)
                if row is None:
                    row = FireCount(pipeline=pipeline)
                    s.add(row)
                row.started, row.queued, row.skipped = values["started"], values["queued"], values["skipped"]
                row.last_skip, row.updated_at = values["last_skip"], utcnow()

    def forget(self, pipeline: str) -> None:
        with self.store.session() as s:
            s.execute(delete(FireCount).where(FireCount.pipeline == pipeline))


class FireCounts:
    """Per schedule, since it was created: fires started, queued and skipped, and the last
    skip's slot and reason. Counted in memory and written to ``saved`` (when given) by
    :meth:`flush`, once per batch of fires; read from it on first use, so they survive a
    restart. A count not yet flushed when the process dies is lost."""

    def __init__(self, saved: FireCountStore | None = None) -> None:
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._saved = saved
        self._counts: dict[str, dict[str, Any]] | None = None if saved is not None else {}
        self._dirty: set[str] = set()

    def _loaded(self) -> dict[str, dict[str, Any]]:
        """The counts, read from the store on first use (the caller holds the lock)."""
        if self._counts is None:
            assert self._saved is not None
            try:
                self._counts = self._saved.load()
            except MAOError as exc:
                log.warning("could not read the fire counts from %s; counting from zero", exc.message)
                self._counts = {}
        return self._counts

    def add(self, pipeline: str, outcome: str, slot: str | None = None, reason: str | None = None) -> None:
        with self._lock:
            counts = self._loaded().setdefault(pipeline, _zero())
            counts[outcome] += 1
            if outcome == "skipped":
                counts["last_skip"] = f"slot {slot}: {reason}" if slot else reason
            self._dirty.add(pipeline)

    def of(self, pipeline: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._loaded().get(pipeline) or _zero())

    def forget(self, pipeline: str) -> None:
        with self._flushing, self._lock:
            self._loaded().pop(pipeline, None)
            self._dirty.discard(pipeline)
            if self._saved is not None:
                try:
                    self._saved.forget(pipeline)
                except MAOError as exc:
                    log.warning("could not remove the fire counts of %s: %s", pipeline, exc.message)

    def flush(self) -> None:
        """Write the counts that changed since the last flush; kept for the next one if the store fails."""
        if self._saved is None:
            return
        with self._flushing:
            with self._lock:
                if not self._dirty:
                    return
                counts = self._loaded()
                changed = {pipeline: dict(counts[pipeline]) for pipeline in self._dirty if pipeline in counts}
                self._dirty.clear()
            try:
                self._saved.save(changed)
            except MAOError as exc:
                log.warning("could not write the fire counts: %s", exc.message)
                with self._lock:
                    self._dirty.update(changed)


class RunRecorder(Protocol):
    """Records runs in batches (:meth:`mao.runs.coordinator.RunCoordinator.record`)."""

    def record(self, requests: Sequence[RunRequest], overlap: str = "refuse") -> list[RecordedRun]: ...


def report(events: EventBus, counts: FireCounts, fire: Fire, outcome: str, **details: Any) -> None:
    """Count, log and publish one fire's outcome (``reason`` for a skip, ``run_id``)."""
    reason = details.get("reason")
    run_id = details.get("run_id")
    handled = details.get("at") or datetime.now(UTC)
    lag = round((handled - fire.scheduled_for).total_seconds(), 3)
    counts.add(fire.pipeline, outcome, fire.slot, reason)
    if outcome == "skipped":
        log.warning("scheduled run of %s for slot %s skipped: %s", fire.pipeline, fire.slot, reason)
    else:
        log.info(
            "scheduled run %s of %s for slot %s %s (%.3fs after its slot)",
            run_id,
            fire.pipeline,
            fire.slot,
            outcome,
            lag,
        )
    events.publish(
        ScheduleFired(pipeline=fire.pipeline, slot=fire.slot, lag_s=lag, outcome=outcome, reason=reason, run_id=run_id)
    )


class FireRecorder(LoopService):
    """Records the runs of fires as they come, in batches, per ``overlap_policy``."""

    name = "fire-recorder"

    def __init__(
        self, runs: Callable[[], RunRecorder], events: EventBus, counts: FireCounts, *, overlap_policy: str
    ) -> None:
        super().__init__(interval=5.0)
        self._runs = runs
        self.events = events
        self.counts = counts
        self.overlap_policy = overlap_policy
        self._fires: deque[tuple[Fire, Future[str]]] = deque()

    def put(self, fire: Fire) -> Future[str]:
        """Hand a fire over; the future gives its outcome once recorded."""
        done: Future[str] = Future()
        self._fires.append((fire, done))
        self.wake()
        return done

    def run_once(self) -> None:
        while self._fires:
            batch = [self._fires.popleft() for _ in range(min(BATCH, len(self._fires)))]
            try:
                outcomes = self.record([fire for fire, _ in batch])
            except BaseException as exc:
                for _, done in batch:
                    done.set_exception(exc)
                raise
            self.counts.flush()
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                done.set_result(outcome)
        self.counts.flush()  # skips counted outside a batch (see Scheduler.counted)

    def on_stop(self) -> None:
        self.run_once()  # fires handed over before the stop are recorded: the next start recovers their runs

    def record(self, batch: list[Fire]) -> list[str]:
        """Record the runs of ``batch`` in one go; each fire's outcome."""
        policy = self.overlap_policy
        requests = [RunRequest(fire.pipeline, "cron", fire.slot) for fire in batch]
        try:
            results = self._runs().record(requests, overlap=policy)
        except MAOError as exc:
            for fire in batch:
                report(self.events, self.counts, fire, "skipped", reason=f"could not record the run: {exc.message}")
            return ["skipped"] * len(batch)
        for fire, result in zip(batch, results, strict=True):
            if result.run_id is None:
                reason = result.error.message if result.error else "not recorded"
                if isinstance(result.error, Conflict):
                    reason += f" (overlap_policy {policy})"
                report(self.events, self.counts, fire, "skipped", reason=reason)
            else:
                behind = f"after run {result.blocking}" if result.outcome == "queued" else None
                report(
                    self.events,
                    self.counts,
                    fire,
                    result.outcome,
                    run_id=result.run_id,
                    at=result.created_at,
                    reason=behind,
                )
        return [result.outcome for result in results]
