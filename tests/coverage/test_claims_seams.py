"""The slot claims through their seams alone: an in-memory registry, a coverage record and a
run starter made for the test. No store, no git, no container engine, no metrics."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from mao.coverage.claims import ClaimSettings, SlotClaims
from mao.coverage.grid import DELIVERED, FAILED
from mao.registry.keys import claim_key, gap_key
from mao.registry.memory import MemoryRegistry
from mao.status import RunStatus

SLOT = "2026-11-28T12:00:00Z"


class Record:
    """A coverage record kept in memory: who delivered which slot, and the git remotes' answer."""

    def __init__(self, in_git: tuple[str, str] | None = None) -> None:
        self.cells: dict[tuple[str, str], list[str]] = {}
        self.in_git = in_git
        self.recorded: list[tuple[str, str, str, int | None]] = []
        self.gaps: list[tuple[str, str]] = []

    def delivered_by(self, pipeline: str, slot: str) -> list[str]:
        return self.cells.get((pipeline, slot), [])

    def delivered_in_git(self, pipeline: str, slot: str) -> tuple[str, str] | None:
        return self.in_git

    def record(self, pipeline: str, slot: str, outcome: str, run_id: int | None) -> None:
        self.recorded.append((pipeline, slot, outcome, run_id))
        if outcome == DELIVERED:
            self.cells.setdefault((pipeline, slot), []).append("here")

    def record_from_git(self, pipeline: str, slot: str, who: str) -> None:
        self.cells.setdefault((pipeline, slot), []).append(who)

    def report_gap(self, pipeline: str, slot: str) -> None:
        self.gaps.append((pipeline, slot))

    def coverage(self, pipeline: str, since: datetime) -> dict[str, Any]:
        return {"gaps": []}


class Runs:
    """Starts runs that end with ``ends`` at once; counts them."""

    def __init__(self, ends: RunStatus = RunStatus.SUCCEEDED) -> None:
        self.ends = ends
        self.started: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def start(self, pipeline: str, trigger: str = "manual", slot: str | None = None) -> int:
        with self.lock:
            self.started.append((pipeline, slot))
            return len(self.started)

    def is_active(self, pipeline: str) -> bool:
        return False

    def status(self, run_id: int) -> RunStatus:
        return self.ends


def _claims(registry: MemoryRegistry, record: Record, runs: Runs, owner: str) -> SlotClaims:
    return SlotClaims(registry, record, lambda: runs, ClaimSettings(ttl=5, poll=0.05), owner=owner)


def test_a_claimed_slot_is_run_once_recorded_and_its_claim_kept_for_good() -> None:
    registry, record, runs = MemoryRegistry(), Record(), Runs()
    claims = _claims(registry, record, runs, "a")
    try:
        outcome = claims.settle("p", SLOT, datetime.now(UTC) + timedelta(seconds=30))
    finally:
        claims.stop()
    assert outcome == "delivered"
    assert runs.started == [("p", SLOT)]
    assert record.recorded == [("p", SLOT, DELIVERED, 1)]
    claim = registry.get(claim_key("p", SLOT))
    assert claim is not None and claim["done"] and claim["instance"] == "a" and claim["run_id"] == 1


def test_two_instances_settling_one_slot_run_it_once() -> None:
    registry, record = MemoryRegistry(), Record()
    runs_a, runs_b = Runs(), Runs()
    until = datetime.now(UTC) + timedelta(seconds=30)
    a, b = _claims(registry, record, runs_a, "a"), _claims(registry, record, runs_b, "b")
    outcomes: dict[str, str] = {}
    threads = [
        threading.Thread(target=lambda c=c, n=n: outcomes.__setitem__(n, c.settle("p", SLOT, until)))
        for c, n in ((a, "a"), (b, "b"))
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        a.stop()
        b.stop()
    assert outcomes == {"a": "delivered", "b": "delivered"}
    assert len(runs_a.started) + len(runs_b.started) == 1


def test_a_slot_the_git_remotes_hold_is_recorded_from_them_and_not_run() -> None:
    registry, record, runs = MemoryRegistry(), Record(in_git=("c", "abc123")), Runs()
    claims = _claims(registry, record, runs, "a")
    try:
        assert claims.settle("p", SLOT, datetime.now(UTC) + timedelta(seconds=30)) == "delivered"
    finally:
        claims.stop()
    assert runs.started == []
    assert record.cells[("p", SLOT)] == ["c"]
    claim = registry.get(claim_key("p", SLOT))
    assert claim is not None and claim["delivered_by"] == "c" and claim["commit"] == "abc123"


def test_a_failed_run_releases_the_claim_and_the_slot_ends_a_gap_recorded_once() -> None:
    registry, record, runs = MemoryRegistry(), Record(), Runs(ends=RunStatus.FAILED)
    claims = _claims(registry, record, runs, "a")
    try:
        outcome = claims.settle("p", SLOT, datetime.now(UTC) + timedelta(seconds=1))
    finally:
        claims.stop()
    assert outcome == "gap"
    assert runs.started == [("p", SLOT)]  # tried once here, not again
    assert record.recorded == [("p", SLOT, FAILED, 1)]
    assert registry.get(claim_key("p", SLOT)) is None  # released
    assert record.gaps == [("p", SLOT)]
    gap = registry.get(gap_key("p", SLOT))
    assert gap is not None and gap["seen_by"] == "a"
