"""The coverage record: ``coverage/<pipeline>/<slot>/<instance>`` in the registry (the fast
index), rebuilt from the git remotes' node commits (``Mao-Slot``, ``Mao-Instance``) when asked.

Schedules are ``schedules/<pipeline>/<instance>`` (published by the scheduler).

:class:`CoverageIndex` reads and writes it for one instance (its ``owner``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mao.coverage.deadlines import mark_grid, verdicts
from mao.coverage.grid import DELIVERED, FAILED, Schedule, build_grid
from mao.datasets.trailers import LogFormat
from mao.errors import MAOError, NotFound
from mao.events import CoverageGap, EventBus
from mao.registry.keys import coverage_key, coverage_prefix, schedules_of, schedules_prefix
from mao.slots import normalize_slot, parse_slot, slot_of
from mao.status import RunStatus

if TYPE_CHECKING:
    from mao.catalog import Catalog
    from mao.datasets.manager import DatasetManager
    from mao.registry.base import Registry

log = logging.getLogger(__name__)

_NODE_LOG = LogFormat("%H")  # node commits: their sha and trailers


def outcome_of(status: str) -> str | None:
    """``delivered`` for a succeeded run (its commits are pushed), ``failed`` for any other end."""
    st = RunStatus(status)
    if st.active:
        return None
    return DELIVERED if st == RunStatus.SUCCEEDED else FAILED


def put_cell(registry: Registry, name: str, pipeline: str, slot: str, outcome: str, run_id: int | None) -> None:
    """Put the cell of instance ``name`` for a run of its own; a ``failed`` never overwrites a ``delivered``."""
    key = coverage_key(pipeline, slot, name)
    value = {
        "slot": slot_of(parse_slot(slot)),
        "instance": name,
        "status": outcome,
        "run_id": run_id,
        "source": "run",
        "at": time.time(),
    }
    if outcome == FAILED and (registry.get(key) or {}).get("status") == DELIVERED:
        return
    registry.put(key, value)


def _merge(into: dict[tuple[str, str], str], more: dict[tuple[str, str], str]) -> None:
    for cell, outcome in more.items():
        if into.get(cell) != DELIVERED:
            into[cell] = outcome


# How far a node commit's date may lie before the slot it is for (clocks of instances differ).
_CLOCK_SKEW = timedelta(days=1)


class CoverageIndex:
    """The coverage record of the federation as this instance (``owner``) reads and writes it:
    the registry's index, the git remotes of the pipelines' output datasets (through the
    catalog and ``datasets``), and ``coverage.gap`` published on ``events`` once per slot."""

    def __init__(
        self,
        registry: Registry,
        catalog: Catalog,
        datasets: Callable[[], DatasetManager],
        events: EventBus,
        *,
        owner: str,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self._datasets = datasets
        self.events = events
        self.owner = owner
        self._gaps_lock = threading.Lock()
        self._reported_gaps: set[tuple[str, str]] = set()

    def record(self, pipeline: str, slot: str, outcome: str, run_id: int | None) -> None:
        """Put this instance's cell; a ``failed`` never overwrites a ``delivered``."""
        put_cell(self.registry, self.owner, pipeline, slot, outcome, run_id)

    def schedules(self, pipeline: str | None = None) -> list[dict[str, Any]]:
        """Every instance's published schedules (all pipelines, or one), sorted by pipeline and instance."""
        out = []
        for (name, instance), value in schedules_of(self.registry.list(schedules_prefix()), pipeline).items():
            if not isinstance(value, dict) or not value.get("cron"):
                continue
            out.append(
                {
                    "pipeline": name,
                    "instance": value.get("instance") or instance,
                    "cron": value["cron"],
                    "timezone": value.get("timezone") or "UTC",
                    "mode": value.get("mode") or "every",
                    "since": value.get("since"),
                }
            )
        return sorted(out, key=lambda s: (s["pipeline"], s["instance"]))

    def delivered_by(self, pipeline: str, slot: str) -> list[str]:
        cells = self.registry.list(coverage_key(pipeline, slot))
        return sorted(name for name, value in cells.items() if (value or {}).get("status") == DELIVERED)

    def indexed_outcomes(self, pipeline: str, since: datetime) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for key, value in self.registry.list(coverage_prefix(pipeline)).items():
            parts = key.split("/")
            if len(parts) != 2 or not isinstance(value, dict):
                continue
            try:
                slot = slot_of(parse_slot(parts[0]))
            except MAOError:
                continue
            if parse_slot(slot) >= since and value.get("status") in (DELIVERED, FAILED):
                out[(slot, parts[1])] = value["status"]
        return out

    def git_outcomes(self, pipeline: str, since: datetime) -> dict[tuple[str, str], str]:
        """From the git remotes alone: the node commits of ``pipeline`` on its output datasets'
        branches. A (slot, instance) whose run committed its last step is delivered; one that
        committed only earlier steps failed. (A step that changed nothing leaves no commit.)"""
        definition = self.catalog.get_pipeline(pipeline)
        steps = [s["name"] for s in definition.get("steps", [])]
        datasets = sorted({s["output_dataset"] for s in definition.get("steps", [])})
        seen: dict[tuple[str, str, str], set[str]] = {}
        for name in datasets:
            url = self.catalog.get_dataset(name)["master"]
            clone = self._datasets().ensure_clone(name, url)
            text = self._datasets().git.run(["log", "-z", "--remotes=origin", "--no-merges", _NODE_LOG.option], clone)
            for _fields, trailers in _NODE_LOG.parse(text):
                if trailers.get("Mao-Pipeline") != pipeline or "Mao-Vote-For" in trailers:
                    continue
                slot, who, run = trailers.get("Mao-Slot"), trailers.get("Mao-Instance"), trailers.get("Mao-Run", "")
                if not slot or not who:
                    continue
                try:
                    if parse_slot(slot) < since:
                        continue
                    slot = slot_of(parse_slot(slot))
                except MAOError:
                    continue
                seen.setdefault((slot, who, run), set()).add(trailers.get("Mao-Step", ""))
        out: dict[tuple[str, str], str] = {}
        for (slot, who, _run), done in seen.items():
            outcome = DELIVERED if not steps or steps[-1] in done else FAILED
            _merge(out, {(slot, who): outcome})
        return out

    def slot_commits(self, pipeline: str, slot: str, datasets: list[str] | None = None) -> dict[str, tuple[str, str]]:
        """The node commits made for ``slot`` of ``pipeline`` on the git remotes of its output
        datasets (or of ``datasets``), as of a fresh fetch: step -> (instance that made it,
        commit). Vote tallies are not node commits. The remotes are what a run leaves even when
        it dies before it ends."""
        slot = normalize_slot(slot)
        if datasets is None:
            definition = self.catalog.get_pipeline(pipeline)
            datasets = sorted({s["output_dataset"] for s in definition.get("steps", [])})
        since = (parse_slot(slot) - _CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%SZ")
        found: dict[str, tuple[str, str]] = {}
        for name in datasets:
            url = self.catalog.get_dataset(name)["master"]
            clone = self._datasets().ensure_clone(name, url)
            args = ["log", "-z", "--remotes=origin", "--no-merges", f"--since={since}", "--fixed-strings"]
            text = self._datasets().git.run([*args, f"--grep=Mao-Slot: {slot}", _NODE_LOG.option], clone)
            for (sha,), trailers in _NODE_LOG.parse(text):
                if (
                    trailers.get("Mao-Pipeline") != pipeline
                    or trailers.get("Mao-Slot") != slot
                    or "Mao-Vote-For" in trailers
                    or not trailers.get("Mao-Step")
                    or not trailers.get("Mao-Instance")
                ):
                    continue
                found.setdefault(trailers["Mao-Step"], (trailers["Mao-Instance"], sha))
        return found

    def delivered_in_git(self, pipeline: str, slot: str) -> tuple[str, str] | None:
        """(instance, commit) of the node commit of the pipeline's last step for ``slot`` on the git
        remotes, or None: a run that committed its last step delivered the slot, whether or not it
        lived to record it."""
        steps = [s["name"] for s in self.catalog.get_pipeline(pipeline).get("steps", [])]
        if not steps:
            return None
        return self.slot_commits(pipeline, slot).get(steps[-1])

    def record_from_git(self, pipeline: str, slot: str, who: str) -> None:
        """Put the cell of instance ``who``, found delivered on the git remotes, into the index."""
        slot = normalize_slot(slot)
        value = {"slot": slot, "instance": who, "status": DELIVERED, "run_id": None, "source": "git", "at": time.time()}
        self.registry.put(coverage_key(pipeline, slot, who), value)

    def coverage(
        self, pipeline: str, since: datetime, *, rebuild: bool = False, now: datetime | None = None
    ) -> dict[str, Any]:
        """The grid of ``pipeline`` since ``since``; ``rebuild`` reads the git remotes too and puts
        what the index lacked back into it."""
        now = now or datetime.now(UTC)
        published = self.schedules(pipeline)
        outcomes = self.indexed_outcomes(pipeline, since)
        if not published and not outcomes and not rebuild:
            try:
                self.catalog.get_pipeline(pipeline)
            except NotFound:
                raise NotFound(
                    f"no pipeline {pipeline!r} in the federation; `maoctl federation schedules` lists them"
                ) from None
        restored = 0
        if rebuild:
            from_git = self.git_outcomes(pipeline, since)
            for (slot, who), outcome in from_git.items():
                if outcomes.get((slot, who)) != DELIVERED and outcomes.get((slot, who)) != outcome:
                    key = coverage_key(pipeline, slot, who)
                    value = {
                        "slot": slot,
                        "instance": who,
                        "status": outcome,
                        "run_id": None,
                        "source": "git",
                        "at": time.time(),
                    }
                    if outcome == DELIVERED or (slot, who) not in outcomes:
                        self.registry.put(key, value)
                        restored += 1
            _merge(outcomes, from_git)
        grid = build_grid(pipeline, [Schedule.of(s) for s in published], outcomes, since, now)
        mark_grid(grid, verdicts(self.registry, pipeline))
        grid["deadline"] = self._deadline(pipeline)
        if any(s.get("instance") == self.owner for s in published):
            for slot in grid["gaps"]:
                self.report_gap(pipeline, slot)
        grid["source"] = "git+index" if rebuild else "index"
        grid["restored"] = restored
        return grid

    def _deadline(self, pipeline: str) -> str | None:
        """The pipeline's slot ``deadline`` in the federation's definition, if it has one."""
        try:
            value = self.catalog.get_pipeline(pipeline).get("deadline")
        except MAOError:
            return None
        return str(value) if value else None

    def report_gap(self, pipeline: str, slot: str) -> None:
        """Publish ``coverage.gap`` for a slot of this instance's pipeline that ended undelivered,
        once per slot in this process."""
        with self._gaps_lock:
            if (pipeline, slot) in self._reported_gaps:
                return
            self._reported_gaps.add((pipeline, slot))
        self.events.publish(CoverageGap(pipeline=pipeline, slot=slot))
