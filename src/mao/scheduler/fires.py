"""What becomes of each scheduler fire: its run recorded (``started`` or ``queued``) or the
fire ``skipped``, counted per schedule and published as ``schedule.fired``.

A fire only hands its pipeline and slot to the :class:`FireRecorder`; one thread records
the runs of all fires waiting, in one store transaction (a thousand schedules firing on
the same minute cost a few commits, not a thousand), and queues them for the runner's
workers. Execution is separate: a fire never waits for a run, nor for a free worker.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mao.errors import Conflict, MAOError
from mao.loop import LoopService
from mao.store.records import RunRequest

if TYPE_CHECKING:
    from mao.instance import Instance

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


class FireCounts:
    """Per schedule, since this instance started: fires started, queued and skipped, and
    the last skip's slot and reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, Any]] = {}

    def add(self, pipeline: str, outcome: str, slot: str | None = None, reason: str | None = None) -> None:
        with self._lock:
            counts = self._counts.setdefault(pipeline, {name: 0 for name in OUTCOMES} | {"last_skip": None})
            counts[outcome] += 1
            if outcome == "skipped":
                counts["last_skip"] = f"slot {slot}: {reason}" if slot else reason

    def of(self, pipeline: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._counts.get(pipeline) or {name: 0 for name in OUTCOMES} | {"last_skip": None})

    def forget(self, pipeline: str) -> None:
        with self._lock:
            self._counts.pop(pipeline, None)


def report(instance: Instance, counts: FireCounts, fire: Fire, outcome: str, **details: Any) -> None:
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
    instance.events.publish(
        "schedule.fired",
        pipeline=fire.pipeline,
        slot=fire.slot,
        lag_s=lag,
        outcome=outcome,
        reason=reason,
        run_id=run_id,
    )


class FireRecorder(LoopService):
    """Records the runs of fires as they come, in batches, per ``overlap_policy``."""

    name = "fire-recorder"

    def __init__(self, instance: Instance, counts: FireCounts) -> None:
        super().__init__(interval=5.0)
        self.instance = instance
        self.counts = counts
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
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                done.set_result(outcome)

    def on_stop(self) -> None:
        self.run_once()  # fires handed over before the stop are recorded: the next start recovers their runs

    def record(self, batch: list[Fire]) -> list[str]:
        """Record the runs of ``batch`` in one go; each fire's outcome."""
        policy = self.instance.settings.overlap_policy
        requests = [RunRequest(fire.pipeline, "cron", fire.slot) for fire in batch]
        try:
            results = self.instance.runner.record(requests, overlap=policy)
        except MAOError as exc:
            for fire in batch:
                report(self.instance, self.counts, fire, "skipped", reason=f"could not record the run: {exc.message}")
            return ["skipped"] * len(batch)
        for fire, result in zip(batch, results, strict=True):
            if result.run_id is None:
                reason = result.error.message if result.error else "not recorded"
                if isinstance(result.error, Conflict):
                    reason += f" (overlap_policy {policy})"
                report(self.instance, self.counts, fire, "skipped", reason=reason)
            else:
                behind = f"after run {result.blocking}" if result.outcome == "queued" else None
                report(
                    self.instance,
                    self.counts,
                    fire,
                    result.outcome,
                    run_id=result.run_id,
                    at=result.created_at,
                    reason=behind,
                )
        return [result.outcome for result in results]
