"""The event bus: typed events, subscribers by type, and the wire form each event leaves with."""

from __future__ import annotations

import json
import logging

from mao.events import (
    BY_KIND,
    EVENT_TYPES,
    CoverageGap,
    Event,
    EventBus,
    GroundTruthUntrusted,
    InstanceLost,
    LockWaited,
    LogLine,
    MetricSuspect,
    NotificationFailed,
    PushRetried,
    RunFinished,
    RunStarted,
    ScheduleFired,
    SlotDeadlineMet,
    SlotDeadlineMissed,
    StepFinished,
    StepRetried,
    StepStarted,
    VoteDisputed,
)
from mao.status import RunStatus

SLOT = "2026-11-28T12:00:00Z"


def _finished(run_id: int = 1, status: RunStatus = RunStatus.FAILED) -> RunFinished:
    return RunFinished(run_id=run_id, pipeline="p", status=status, error="boom", slot=SLOT, duration_s=1.5)


def test_a_subscriber_gets_the_types_it_names_and_one_naming_none_gets_all() -> None:
    bus = EventBus()
    ends: list[RunFinished] = []
    steps: list[Event] = []
    everything: list[Event] = []
    bus.subscribe(ends.append, RunFinished)
    bus.subscribe(steps.append, StepStarted, StepFinished)
    bus.subscribe(everything.append)
    started = bus.publish(StepStarted(run_id=1, pipeline="p", step="s"))
    ended = bus.publish(_finished())
    assert ends == [ended] and ends[0].status is RunStatus.FAILED
    assert steps == [started]
    assert everything == [started, ended]
    assert [e.seq for e in everything] == [1, 2]  # in publishing order


def test_an_unsubscribed_or_failing_subscriber_does_not_stop_the_others(caplog) -> None:
    bus = EventBus()
    got: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken, RunFinished)
    gone = bus.subscribe(got.append, RunFinished)
    kept: list[Event] = []
    bus.subscribe(kept.append, RunFinished)
    gone()
    with caplog.at_level(logging.ERROR, logger="mao.events"):
        bus.publish(_finished())
    assert got == [] and len(kept) == 1
    assert "an event subscriber failed on run.finished" in caplog.text


def test_each_kind_has_one_type() -> None:
    kinds = [cls.kind for cls in EVENT_TYPES]
    assert len(set(kinds)) == len(kinds) == len(BY_KIND)
    assert all(BY_KIND[cls.kind] is cls for cls in EVENT_TYPES)


SAMPLES: list[tuple[Event, dict]] = [
    (
        RunStarted(run_id=3, pipeline="p", trigger="cron", slot=SLOT),
        {"run_id": 3, "pipeline": "p", "trigger": "cron", "slot": SLOT},
    ),
    (
        _finished(3),
        {"run_id": 3, "pipeline": "p", "status": "failed", "error": "boom", "slot": SLOT, "duration_s": 1.5},
    ),
    (StepStarted(run_id=3, pipeline="p", step="s"), {"run_id": 3, "pipeline": "p", "step": "s"}),
    (
        StepFinished(run_id=3, pipeline="p", step="s", status=RunStatus.SUCCEEDED, error=None, duration_s=0.5),
        {
            "run_id": 3,
            "pipeline": "p",
            "step": "s",
            "status": "succeeded",
            "error": None,
            "duration_s": 0.5,
            "executor": None,
        },
    ),
    (
        StepRetried(run_id=3, pipeline="p", step="s", attempt=1, exit_code=75, delay_s=10.0),
        {"run_id": 3, "pipeline": "p", "step": "s", "attempt": 1, "exit_code": 75, "delay_s": 10.0},
    ),
    (LogLine(run_id=3, step=None, line="x"), {"run_id": 3, "step": None, "line": "x", "attempt": None}),
    (
        ScheduleFired(pipeline="p", slot=SLOT, lag_s=0.2, outcome="skipped", reason="why", run_id=None),
        {"pipeline": "p", "slot": SLOT, "lag_s": 0.2, "outcome": "skipped", "reason": "why", "run_id": None},
    ),
    (LockWaited(dataset="d", seconds=1.0), {"dataset": "d", "seconds": 1.0}),
    (PushRetried(dataset="d", branch="b", attempt=2), {"dataset": "d", "branch": "b", "attempt": 2}),
    (
        MetricSuspect(
            run_id=3, pipeline="p", step="s", metric="rows", value=152, rule="change", detail="rows: off", slot=None
        ),
        {
            "run_id": 3,
            "pipeline": "p",
            "step": "s",
            "metric": "rows",
            "value": 152,
            "rule": "change",
            "detail": "rows: off",
            "slot": None,
        },
    ),
    (VoteDisputed(dataset="d", slot=SLOT), {"dataset": "d", "slot": SLOT}),
    (
        SlotDeadlineMissed(pipeline="p", slot=SLOT, deadline=SLOT, reason="undelivered", detail="none"),
        {"pipeline": "p", "slot": SLOT, "deadline": SLOT, "reason": "undelivered", "detail": "none"},
    ),
    (
        SlotDeadlineMet(pipeline="p", slot=SLOT, deadline=SLOT, delivered_by="a, b"),
        {"pipeline": "p", "slot": SLOT, "deadline": SLOT, "delivered_by": "a, b"},
    ),
    (
        GroundTruthUntrusted(dataset="d", commit="c", trusted="t", reason="not signed"),
        {"dataset": "d", "commit": "c", "trusted": "t", "reason": "not signed"},
    ),
    (CoverageGap(pipeline="p", slot=SLOT), {"pipeline": "p", "slot": SLOT}),
    (InstanceLost(instance="beta"), {"instance": "beta"}),
    (
        NotificationFailed(rule="r", target="https://hooks.example.org/…", event_kind="run.failed"),
        {"rule": "r", "target": "https://hooks.example.org/…", "event_kind": "run.failed"},
    ),
]


def test_every_event_leaves_with_its_fields_as_plain_json() -> None:
    """What webhooks, dead letters and notification log lines carry as ``data``: the event's own
    fields, statuses as their strings, never the bus's ``at`` or ``seq``."""
    assert {type(event) for event, _ in SAMPLES} == set(EVENT_TYPES)
    for event, expected in SAMPLES:
        published = EventBus().publish(event)
        assert published.payload() == expected, event.kind
        assert json.loads(json.dumps(published.payload())) == expected
        assert all(type(value) in (str, int, float, type(None)) for value in published.payload().values())
