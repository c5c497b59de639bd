"""What happens in an instance, as events: one in-process bus that the dashboard's live
views, the Prometheus metrics and the notifications all listen to.

Publishing never blocks and never fails the publisher: a subscriber runs in the
publisher's thread and must only hand the event on (put it in a queue, bump a counter);
an exception in a subscriber is logged and dropped.

Kinds published (``data`` keys in brackets):

- ``run.started`` (run_id, pipeline, trigger, slot)
- ``run.finished`` (run_id, pipeline, status, error, slot, duration_s)
- ``step.started`` (run_id, pipeline, step)
- ``step.finished`` (run_id, pipeline, step, status, error, duration_s)
- ``log`` (run_id, step, line): every stored log line of a run
- ``schedule.fired`` (pipeline, slot, lag_s, outcome, reason, run_id): a scheduler fire
  handled: ``started`` (its run recorded and queued), ``queued`` (recorded behind a run of
  its pipeline still pending or running; reason ``after run N``) or ``skipped`` (not run;
  reason says why, naming the run in the way); ``lag_s`` is the run's record time (a skip:
  the time it was decided) minus the fire time
- ``lock.waited`` (dataset, seconds): a ``merge-<dataset>`` lock acquired after this wait
- ``push.retried`` (dataset, branch, attempt): a push tried again (attempt 2 is the first retry)
- ``metric.suspect`` (run_id, pipeline, step, metric, value, rule, detail, slot)
- ``vote.disputed`` (dataset, slot)
- ``coverage.gap`` (pipeline, slot): once per slot this instance's pipeline missed
- ``instance.lost`` (instance): a member that was live is gone
- ``notification.failed`` (rule, target, event_kind): a notification given up on (dead letter)
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    kind: str
    data: Mapping[str, Any]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int = 0
    """Increasing per bus: lets a listener tell which events it has already seen."""


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out to subscribers; thread-safe."""

    def __init__(self) -> None:
        self._subscribers: dict[int, tuple[Subscriber, frozenset[str] | None]] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber, kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Call ``callback`` for every event (or only those of ``kinds``); returns the unsubscribe function."""
        wanted = frozenset(kinds) if kinds is not None else None
        with self._lock:
            key = next(self._ids)
            self._subscribers[key] = (callback, wanted)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    def publish(self, kind: str, **data: Any) -> Event:
        with self._lock:
            event = Event(kind, data, seq=next(self._seq))
            targets = [cb for cb, wanted in self._subscribers.values() if wanted is None or kind in wanted]
        for callback in targets:
            try:
                callback(event)
            except Exception:
                log.exception("an event subscriber failed on %s", kind)
        return event
