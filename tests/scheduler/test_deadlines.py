"""Slot deadlines without a server: the arithmetic, the verdicts (met, undelivered,
undecided), and one alert per slot however many instances check, on the in-memory and the
SQL-backed registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mao.coverage.deadlines import mark_grid, verdicts, with_deadlines
from mao.coverage.grid import DELIVERED, FAILED, Schedule
from mao.coverage.index import put_cell
from mao.errors import InvalidInput, NotFound
from mao.events import EventBus, SlotDeadlineMet, SlotDeadlineMissed
from mao.models import PipelineIn, parse_deadline
from mao.registry.base import Registry
from mao.registry.keys import deadline_key, tally_key
from mao.registry.local import LocalRegistry
from mao.registry.memory import MemoryRegistry
from mao.scheduler.deadlines import DeadlineChecker, DeadlineSettings, DeadlineWatch, deadline_of, passed_slots
from mao.store.db import make_engine
from mao.store.store import Store

NOW = datetime(2026, 11, 28, 12, 30, 10, tzinfo=UTC)
HOURLY = Schedule("p", "a", "0 * * * *", since="2026-11-28T00:00:00Z")


def test_parse_deadline() -> None:
    assert parse_deadline("90s") == 90
    assert parse_deadline("30m") == 1800
    assert parse_deadline("2h") == 7200
    assert parse_deadline("1d") == 86400
    for bad in ("", "0m", "30", "30 min", "-5m", "1.5h", "31d", "m"):
        with pytest.raises(InvalidInput):
            parse_deadline(bad)


def test_the_pipeline_yaml_says_its_deadline() -> None:
    steps = [{"name": "s", "tool": "t", "output_dataset": "d"}]
    assert PipelineIn(name="p", steps=steps, deadline="30m").definition()["deadline"] == "30m"
    assert "deadline" not in PipelineIn(name="p", steps=steps).definition()
    with pytest.raises(ValidationError, match="is not a duration"):
        PipelineIn(name="p", steps=steps, deadline="half an hour")


def test_deadline_of_is_the_fire_time_plus_the_deadline() -> None:
    assert deadline_of("2026-11-28T12:00:00Z", 1800) == datetime(2026, 11, 28, 12, 30, tzinfo=UTC)


def test_passed_slots_are_those_whose_deadline_passed_within_the_lookback() -> None:
    # 12:00 + 30m = 12:30 <= 12:30:10: passed; 13:00 not; lookback 2h 10s reaches back to 10:00 + 30m
    got = passed_slots([HOURLY], 1800, NOW, 2 * 3600 + 10)
    assert list(passed_slots([HOURLY], 1800, NOW, 2 * 3600)) == ["2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z"]
    assert list(got) == ["2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z"]
    assert got["2026-11-28T12:00:00Z"] == ["a"]
    # a deadline longer than the cron's period: the slot after still runs while this one is due
    assert list(passed_slots([HOURLY], 90 * 60, NOW, 3600)) == ["2026-11-28T11:00:00Z"]


def test_passed_slots_respect_each_schedules_since_and_join_the_instances() -> None:
    late = Schedule("p", "b", "0 * * * *", since="2026-11-28T11:30:00Z")
    got = passed_slots([HOURLY, late], 1800, NOW, 3 * 3600)
    assert got["2026-11-28T11:00:00Z"] == ["a"]
    assert got["2026-11-28T12:00:00Z"] == ["a", "b"]
    assert passed_slots([Schedule("p", "c", "0 * * * *", since="2026-11-28T12:10:00Z")], 1800, NOW, 3600) == {}
    assert passed_slots([Schedule("p", "c", "not a cron")], 1800, NOW, 3600) == {}


class Catalog:
    def __init__(self, pipelines: dict[str, dict[str, Any]], datasets: dict[str, dict[str, Any]]) -> None:
        self._pipelines = pipelines
        self._datasets = datasets

    def pipelines(self) -> dict[str, dict[str, Any]]:
        return self._pipelines

    def get_dataset(self, name: str) -> dict[str, Any]:
        if name not in self._datasets:
            raise NotFound(f"no dataset {name!r}")
        return self._datasets[name]


class Index:
    """The coverage record's reads, on the registry's coverage cells; git answers ``in_git``."""

    def __init__(self, registry: Registry, schedules: list[Schedule]) -> None:
        self.registry = registry
        self._schedules = schedules
        self.in_git: dict[tuple[str, str], str] = {}
        self.git_reads = 0

    def schedules(self, pipeline: str | None = None) -> list[dict[str, Any]]:
        return [s.__dict__ for s in self._schedules if pipeline in (None, s.pipeline)]

    def delivered_by(self, pipeline: str, slot: str) -> list[str]:
        cells = self.registry.list(f"coverage/{pipeline}/{slot.replace('-', '').replace(':', '')}/")
        return sorted(k for k, v in cells.items() if v.get("status") == DELIVERED)

    def git_outcomes(self, pipeline: str, since: datetime) -> dict[tuple[str, str], str]:
        self.git_reads += 1
        return self.in_git


def pipeline(name: str = "p", deadline: str | None = "30m", dataset: str = "obs") -> dict[str, Any]:
    steps = [{"name": f"{name}-s", "tool": "t", "output_dataset": dataset}]
    return PipelineIn(name=name, steps=steps, deadline=deadline).definition()


def checker(
    registry: Registry,
    index: Index,
    *,
    owner: str = "a",
    pipelines: list[dict[str, Any]] | None = None,
    policy: str = "merge",
) -> tuple[DeadlineChecker, list[Any]]:
    events = EventBus()
    seen: list[Any] = []
    events.subscribe(seen.append, SlotDeadlineMissed, SlotDeadlineMet)
    catalog = Catalog({p["name"]: p for p in pipelines or [pipeline()]}, {"obs": {"policy": policy}})
    return DeadlineChecker(registry, catalog, index, events, DeadlineSettings(owner=owner, lookback=7200)), seen


@pytest.fixture(params=["memory", "local"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        yield MemoryRegistry()
        return
    store = Store(make_engine(f"sqlite:///{tmp_path / 'reg.db'}"))
    store.migrate()
    reg = LocalRegistry(store)
    yield reg
    reg.close()
    store.close()


def test_an_undelivered_slot_is_missed_once_however_many_instances_check(registry: Registry) -> None:
    index = Index(registry, [HOURLY, Schedule("p", "b", "0 * * * *", since="2026-11-28T00:00:00Z")])
    put_cell(registry, "a", "p", "2026-11-28T11:00:00Z", DELIVERED, 1)
    put_cell(registry, "b", "p", "2026-11-28T12:00:00Z", FAILED, 2)
    first, seen_a = checker(registry, index, owner="a")
    second, seen_b = checker(registry, index, owner="b")
    written = first.check(NOW) + second.check(NOW) + first.check(NOW + timedelta(seconds=20))
    assert [(w["slot"], w["status"]) for w in written] == [
        ("2026-11-28T11:00:00Z", "met"),
        ("2026-11-28T12:00:00Z", "missed"),
    ]
    assert seen_b == []
    missed = [e for e in seen_a if isinstance(e, SlotDeadlineMissed)]
    assert [(e.pipeline, e.slot, e.deadline, e.reason) for e in missed] == [
        ("p", "2026-11-28T12:00:00Z", "2026-11-28T12:30:00Z", "undelivered")
    ]
    assert "due on a, b" in missed[0].detail
    assert registry.get(deadline_key("p", "2026-11-28T12:00:00Z"))["seen_by"] == "a"
    assert set(verdicts(registry, "p")) == {"2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z"}


def test_a_slot_delivered_only_on_the_git_remotes_is_met_and_git_is_read_once_per_round(registry: Registry) -> None:
    index = Index(registry, [HOURLY])
    index.in_git = {("2026-11-28T12:00:00Z", "b"): DELIVERED, ("2026-11-28T11:00:00Z", "a"): FAILED}
    check, seen = checker(registry, index)
    written = check.check(NOW)
    assert {w["slot"]: (w["status"], w["delivered_by"]) for w in written} == {
        "2026-11-28T11:00:00Z": ("missed", []),
        "2026-11-28T12:00:00Z": ("met", ["b"]),
    }
    assert index.git_reads == 1
    assert check.check(NOW) == [] and index.git_reads == 1  # decided slots are not read again


def test_a_vote_slot_without_a_decision_is_missed_though_delivered(registry: Registry) -> None:
    index = Index(registry, [HOURLY])
    for slot in ("2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z"):
        put_cell(registry, "a", "p", slot, DELIVERED, 1)
    registry.put(tally_key("obs/p/p-s/20261128T110000Z"), {"outcome": "agreed"})
    registry.put(tally_key("obs/p/p-s/20261128T120000Z"), {"outcome": "disputed"})
    check, seen = checker(registry, index, policy="vote")
    written = {w["slot"]: w for w in check.check(NOW)}
    assert written["2026-11-28T11:00:00Z"]["status"] == "met"
    assert written["2026-11-28T12:00:00Z"]["reason"] == "undecided"
    assert "p-s (obs: disputed)" in written["2026-11-28T12:00:00Z"]["detail"]
    assert [e.reason for e in seen if isinstance(e, SlotDeadlineMissed)] == ["undecided"]


def test_pipelines_without_a_deadline_or_a_schedule_are_not_checked() -> None:
    registry = MemoryRegistry()
    index = Index(registry, [Schedule("other", "a", "0 * * * *")])
    check, seen = checker(registry, index, pipelines=[pipeline("p"), pipeline("other", deadline=None)])
    assert check.check(NOW) == [] and seen == []
    assert index.git_reads == 0


def test_a_slot_that_cannot_be_decided_now_waits_for_the_next_round() -> None:
    registry = MemoryRegistry()
    index = Index(registry, [HOURLY])
    put_cell(registry, "a", "p", "2026-11-28T12:00:00Z", DELIVERED, 1)
    check, _ = checker(registry, index, pipelines=[pipeline(dataset="gone")], policy="vote")
    assert [(w["slot"], w["reason"]) for w in check.check(NOW)] == [("2026-11-28T11:00:00Z", "undelivered")]
    assert set(verdicts(registry, "p")) == {"2026-11-28T11:00:00Z"}  # 12:00 is decided once the dataset is back


def test_the_watch_checks_in_rounds() -> None:
    registry = MemoryRegistry()
    check, _ = checker(registry, Index(registry, []))
    watch = DeadlineWatch(check)
    assert watch.run_first and watch.interval == 15.0
    watch.run_once()


def test_the_grid_and_the_schedules_show_the_deadlines() -> None:
    grid = {"slots": [{"slot": "2026-11-28T11:00:00Z"}, {"slot": "2026-11-28T12:00:00Z"}, {"slot": "x"}]}
    found = {"2026-11-28T11:00:00Z": {"status": "met"}, "2026-11-28T12:00:00Z": {"status": "missed"}}
    marked = mark_grid(grid, found)
    assert [r["deadline"] for r in marked["slots"]] == ["met", "missed", None]
    assert marked["deadlines_missed"] == ["2026-11-28T12:00:00Z"]
    schedules = [{"pipeline": "p", "instance": "a"}, {"pipeline": "q", "instance": "a"}]
    assert [s["deadline"] for s in with_deadlines(schedules, {"p": {"deadline": "30m"}})] == ["30m", None]


def test_the_dashboard_outlines_the_slots_past_their_deadline() -> None:
    from mao.ui.heatmap import heatmap

    cells = {"a": "missing", "b": "missing"}
    grid = {
        "instances": ["a", "b"],
        "gaps": ["2026-11-28T12:00:00Z"],
        "slots": [
            {"slot": "2026-11-28T11:00:00Z", "cells": cells, "deadline": "met"},
            {"slot": "2026-11-28T12:00:00Z", "cells": cells, "deadline": "missed"},
        ],
    }
    chart = heatmap("p", grid)
    assert [c.slot for c in chart.late] == ["2026-11-28T12:00:00Z"]
    assert "1 past their deadline" in chart.desc
