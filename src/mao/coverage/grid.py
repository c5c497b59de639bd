"""The coverage grid, a pure function of the federation's schedules and the runs' outcomes.

A cell (slot, instance) is ``delivered`` (a run for that slot succeeded: its commits are
pushed), ``failed`` (runs for it, none succeeded), ``missing`` (the instance was due and did
nothing; under ``one`` only when nobody delivered the slot), ``pending`` (due, the slot still
open) or ``not_due``. A *gap* is a slot that is over with no delivered run anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mao.coverage.window import slot_end, slots_between
from mao.errors import MAOError
from mao.slots import parse_slot
from mao.status import RunStatus

DELIVERED, MISSING, NOT_DUE = "delivered", "missing", "not_due"
FAILED, PENDING = RunStatus.FAILED.value, RunStatus.PENDING.value
SYMBOLS = {DELIVERED: "✓", FAILED: "✗", MISSING: "–", PENDING: "…", NOT_DUE: "·"}
MODES = ("every", "one")


@dataclass(frozen=True)
class Schedule:
    pipeline: str
    instance: str
    cron: str
    timezone: str = "UTC"
    mode: str = "every"
    since: str | None = None
    """When the instance scheduled it (ISO-8601 UTC): earlier slots are not due for it."""

    @classmethod
    def of(cls, value: Mapping[str, Any]) -> Schedule:
        return cls(
            pipeline=str(value["pipeline"]),
            instance=str(value["instance"]),
            cron=str(value["cron"]),
            timezone=str(value.get("timezone") or "UTC"),
            mode=str(value.get("mode") or "every"),
            since=value.get("since"),
        )


def _due_from(schedule: Schedule) -> datetime | None:
    try:
        return parse_slot(schedule.since) if schedule.since else None
    except MAOError:
        return None


def build_grid(
    pipeline: str,
    schedules: Iterable[Schedule],
    outcomes: Mapping[tuple[str, str], str],
    since: datetime,
    now: datetime,
) -> dict[str, Any]:
    """``outcomes`` maps (slot, instance) to ``delivered`` or ``failed``; the grid of every slot
    in ``[since, now]`` (gaps first in ``gaps``, slots oldest first)."""
    mine = [s for s in schedules if s.pipeline == pipeline]
    due: dict[str, dict[str, str]] = {}  # slot -> instance -> mode
    ends: dict[str, datetime] = {}
    for schedule in mine:
        start = _due_from(schedule)
        for slot in slots_between(schedule.cron, schedule.timezone, since, now):
            at = parse_slot(slot)
            if start is not None and at < start:
                continue
            due.setdefault(slot, {})[schedule.instance] = schedule.mode
            end = slot_end(schedule.cron, schedule.timezone, at)
            ends[slot] = min(end, ends.get(slot, end))
    for slot, _ in outcomes:
        if since <= parse_slot(slot) <= now:
            due.setdefault(slot, {})
    instances = sorted({s.instance for s in mine} | {i for (slot, i) in outcomes if slot in due})
    rows = []
    gaps = []
    for slot in sorted(due, key=parse_slot):
        is_open = slot in ends and now < ends[slot]
        delivered_by = sorted(i for i in instances if outcomes.get((slot, i)) == DELIVERED)
        covered = bool(delivered_by)
        modes = set(due[slot].values())
        mode = "every" if "every" in modes or not modes else "one"
        cells = {}
        for inst in instances:
            outcome = outcomes.get((slot, inst))
            if outcome in (DELIVERED, FAILED):
                cells[inst] = outcome
            elif inst not in due[slot] or (mode == "one" and covered):
                cells[inst] = NOT_DUE
            else:
                cells[inst] = PENDING if is_open else MISSING
        if not covered and not is_open:
            gaps.append(slot)
        rows.append(
            {
                "slot": slot,
                "mode": mode,
                "open": is_open,
                "covered": covered,
                "delivered_by": delivered_by,
                "cells": cells,
            }
        )
    closed = [r for r in rows if not r["open"]]
    return {
        "pipeline": pipeline,
        "since": since.isoformat().replace("+00:00", "Z"),
        "until": now.isoformat().replace("+00:00", "Z"),
        "instances": instances,
        "schedules": [s.__dict__ for s in mine],
        "gaps": gaps,
        "slots": rows,
        "counts": {
            "slots": len(rows),
            "closed": len(closed),
            "covered": sum(r["covered"] for r in closed),
            "gaps": len(gaps),
        },
    }
