"""What happens in an instance, as typed events on one in-process bus that the dashboard's
live views, the Prometheus metrics, the notifications and the coverage record listen to.

Each event is a frozen dataclass with typed fields. Its :attr:`~Event.kind` is the name it
has outside the process (a webhook's ``X-MAO-Event``, a dead letter, a notification rule's
``events``), and :meth:`~Event.payload` its fields as they are sent there.

A subscriber names the event types it wants (``bus.subscribe(on_end, RunFinished)``), or
none to get every event (the live view of a run). Publishing never blocks and never fails
the publisher: a subscriber runs in the publisher's thread and must only hand the event on
(put it in a queue, bump a counter, write one record); an exception in a subscriber is
logged and dropped.

The events:

- :class:`RunStarted` ``run.started``
- :class:`RunFinished` ``run.finished``: every end of a run, the ones recovery gives
  (``interrupted``) included
- :class:`StepStarted` ``step.started``, :class:`StepFinished` ``step.finished``
- :class:`StepRetried` ``step.retried``: a step's failed attempt is to be run again
- :class:`LogLine` ``log``: every stored log line of a run
- :class:`ScheduleFired` ``schedule.fired``: a scheduler fire handled: ``started`` (its run
  recorded and queued), ``queued`` (recorded behind a run of its pipeline still pending or
  running; reason ``after run N``) or ``skipped`` (not run; reason says why, naming the run
  in the way); ``lag_s`` is the run's record time (a skip: the time it was decided) minus
  the fire time
- :class:`LockWaited` ``lock.waited``: a ``merge-<dataset>`` lock acquired after this wait
- :class:`PushRetried` ``push.retried``: a push tried again (attempt 2 is the first retry)
- :class:`MetricSuspect` ``metric.suspect``: a step's control metric broke its rule
- :class:`VoteDisputed` ``vote.disputed``: a slot's tally found no majority
- :class:`GroundTruthUntrusted` ``ground_truth.untrusted``: a fetched ``ground-truth`` advanced to a
  commit no known instance signed (not built on)
- :class:`CoverageGap` ``coverage.gap``: once per slot this instance's pipeline missed
- :class:`SlotDeadlineMissed` ``slot.deadline_missed``: a slot with no delivered run (or, for
  a ``vote`` dataset, no ``ground-truth`` decision) by its deadline; once per slot for the
  whole federation, published by the instance that noticed it first
- :class:`SlotDeadlineMet` ``slot.deadline_met``: a slot delivered (and decided) by its
  deadline, published once per slot by the instance that checked it first
- :class:`InstanceLost` ``instance.lost``: a member that was live is gone
- :class:`NotificationFailed` ``notification.failed``: a notification given up on (dead letter)
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar, TypeVar, overload

from mao.status import RunStatus

log = logging.getLogger(__name__)

_ENVELOPE = frozenset({"at", "seq"})


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """The base of every event: when it happened and its place on the bus."""

    kind: ClassVar[str]
    """The event's name outside the process, e.g. ``run.finished``."""
    at: datetime = field(default_factory=_now, compare=False)
    seq: int = field(default=0, compare=False)
    """Increasing per bus, given when published: lets a listener tell which events it has already seen."""

    def payload(self) -> dict[str, Any]:
        """The event's own fields (not ``at`` nor ``seq``), as plain JSON values: what a
        webhook, a dead letter and a notification's log line carry as ``data``."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in _ENVELOPE}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


# runs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run.started"
    run_id: int
    pipeline: str
    trigger: str
    slot: str | None


@dataclass(frozen=True)
class RunFinished(Event):
    """A run's end, once the store has recorded it: what the coverage record, the metrics,
    the notifications and the live views need, without reading the run back."""

    kind: ClassVar[str] = "run.finished"
    run_id: int
    pipeline: str
    status: RunStatus
    error: str | None
    slot: str | None
    duration_s: float | None
    """Seconds from its start to its end; None when it never started here."""


@dataclass(frozen=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step.started"
    run_id: int
    pipeline: str
    step: str


@dataclass(frozen=True)
class StepFinished(Event):
    kind: ClassVar[str] = "step.finished"
    run_id: int
    pipeline: str
    step: str
    status: RunStatus
    error: str | None
    duration_s: float
    executor: str | None = None
    """The engine that ran the step's container (``docker``, ``kubernetes``...); None: none ran."""


@dataclass(frozen=True)
class StepRetried(Event):
    """A step's attempt failed with an exit code its retry policy retries: the next attempt
    (2 for the first retry) starts after ``delay_s`` seconds, unless the run is cancelled."""

    kind: ClassVar[str] = "step.retried"
    run_id: int
    pipeline: str
    step: str
    attempt: int
    exit_code: int
    delay_s: float


@dataclass(frozen=True)
class LogLine(Event):
    """A log line of a run as stored (a run's own lines have no step)."""

    kind: ClassVar[str] = "log"
    run_id: int
    step: str | None
    line: str
    attempt: int | None = None
    """The step's attempt whose container wrote the line (None: not a container's line)."""


# the scheduler, the datasets' remotes and locks ---------------------------------


@dataclass(frozen=True)
class ScheduleFired(Event):
    kind: ClassVar[str] = "schedule.fired"
    pipeline: str
    slot: str | None
    lag_s: float
    outcome: str
    """``started``, ``queued`` or ``skipped``."""
    reason: str | None
    run_id: int | None


@dataclass(frozen=True)
class LockWaited(Event):
    kind: ClassVar[str] = "lock.waited"
    dataset: str
    seconds: float


@dataclass(frozen=True)
class PushRetried(Event):
    kind: ClassVar[str] = "push.retried"
    dataset: str
    branch: str
    attempt: int


# what the notifications forward ---------------------------------------------------


@dataclass(frozen=True)
class MetricSuspect(Event):
    kind: ClassVar[str] = "metric.suspect"
    run_id: int
    pipeline: str
    step: str
    metric: str | None
    """None when the step's metrics file itself could not be read (rule ``invalid``)."""
    value: float | None
    rule: str
    """The kind of check broken: ``range``, ``change``, or ``invalid`` (the metrics file)."""
    detail: str
    slot: str | None


@dataclass(frozen=True)
class VoteDisputed(Event):
    kind: ClassVar[str] = "vote.disputed"
    dataset: str
    slot: str


@dataclass(frozen=True)
class GroundTruthUntrusted(Event):
    """A fetched ``ground-truth`` advanced to ``commit``, which no known instance (or no elector
    of its slot) signed; the instance works from ``trusted`` meanwhile."""

    kind: ClassVar[str] = "ground_truth.untrusted"
    dataset: str
    commit: str
    trusted: str
    reason: str


@dataclass(frozen=True)
class CoverageGap(Event):
    kind: ClassVar[str] = "coverage.gap"
    pipeline: str
    slot: str


@dataclass(frozen=True)
class SlotDeadlineMissed(Event):
    kind: ClassVar[str] = "slot.deadline_missed"
    pipeline: str
    slot: str
    deadline: str
    """When the slot was due (ISO-8601 UTC): its fire time plus the pipeline's ``deadline``."""
    reason: str
    """``undelivered`` (no delivered run) or ``undecided`` (a ``vote`` dataset without a decision)."""
    detail: str


@dataclass(frozen=True)
class SlotDeadlineMet(Event):
    kind: ClassVar[str] = "slot.deadline_met"
    pipeline: str
    slot: str
    deadline: str
    delivered_by: str
    """The instances that delivered it, comma-separated."""


@dataclass(frozen=True)
class InstanceLost(Event):
    kind: ClassVar[str] = "instance.lost"
    instance: str


@dataclass(frozen=True)
class NotificationFailed(Event):
    kind: ClassVar[str] = "notification.failed"
    rule: str
    target: str
    """The webhook by scheme and host only, or ``log``."""
    event_kind: str


EVENT_TYPES: tuple[type[Event], ...] = (
    RunStarted,
    RunFinished,
    StepStarted,
    StepFinished,
    StepRetried,
    LogLine,
    ScheduleFired,
    LockWaited,
    PushRetried,
    MetricSuspect,
    VoteDisputed,
    GroundTruthUntrusted,
    CoverageGap,
    SlotDeadlineMissed,
    SlotDeadlineMet,
    InstanceLost,
    NotificationFailed,
)
BY_KIND: dict[str, type[Event]] = {cls.kind: cls for cls in EVENT_TYPES}
"""Each event type by its kind."""


E = TypeVar("E", bound=Event)


class EventBus:
    """Synchronous fan-out to subscribers; thread-safe."""

    def __init__(self) -> None:
        self._subscribers: dict[int, tuple[Callable[[Any], object], tuple[type[Event], ...]]] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    @overload
    def subscribe(self, callback: Callable[[Event], object], /) -> Callable[[], None]: ...

    @overload
    def subscribe(self, callback: Callable[[E], object], wanted: type[E], /) -> Callable[[], None]: ...

    @overload
    def subscribe(self, callback: Callable[[Any], object], /, *types: type[Event]) -> Callable[[], None]: ...

    def subscribe(self, callback: Callable[[Any], object], /, *types: type[Event]) -> Callable[[], None]:
        """Call ``callback`` for every event of ``types`` (of any type when none is named);
        returns the unsubscribe function."""
        with self._lock:
            key = next(self._ids)
            self._subscribers[key] = (callback, types)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    def publish(self, event: E, /) -> E:
        """Hand ``event`` to its subscribers, in the order they subscribed; returns it as
        published (with its ``seq``)."""
        with self._lock:
            event = dataclasses.replace(event, seq=next(self._seq))
            targets = [cb for cb, types in self._subscribers.values() if not types or isinstance(event, types)]
        for callback in targets:
            try:
                callback(event)
            except Exception:
                log.exception("an event subscriber failed on %s", event.kind)
        return event
