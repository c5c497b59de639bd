"""Slot deadlines as the coverage record shows them: the verdicts kept in the registry
(``deadlines/<pipeline>/<slot>``, one per slot for the federation, written by
:mod:`mao.scheduler.deadlines`) read back and marked on a coverage grid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mao.errors import MAOError
from mao.registry.base import Registry
from mao.registry.keys import deadlines_prefix
from mao.slots import parse_slot, slot_of

MET, MISSED = "met", "missed"


def verdicts(registry: Registry, pipeline: str) -> dict[str, dict[str, Any]]:
    """The deadline verdicts of ``pipeline``: slot (ISO-8601 UTC) -> its record
    (``status`` ``met`` or ``missed``, ``deadline``, ``reason``, ``seen_by``)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in registry.list(deadlines_prefix(pipeline)).items():
        if "/" in key or not isinstance(value, dict) or value.get("status") not in (MET, MISSED):
            continue
        try:
            out[slot_of(parse_slot(key))] = value
        except MAOError:
            continue
    return out


def mark_grid(grid: dict[str, Any], found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each slot row of ``grid`` gets ``deadline``: ``met``, ``missed`` or None (no verdict:
    no deadline, or not passed yet); ``deadlines_missed`` lists the missed slots, oldest first."""
    missed = []
    for row in grid.get("slots", []):
        verdict = found.get(row["slot"])
        row["deadline"] = verdict["status"] if verdict else None
        if verdict and verdict["status"] == MISSED:
            missed.append(row["slot"])
    grid["deadlines_missed"] = missed
    return grid


def with_deadlines(schedules: list[dict[str, Any]], pipelines: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each published schedule with its pipeline's ``deadline`` (None: no deadline), from the
    federation's pipeline definitions ``pipelines``."""
    return [{**s, "deadline": (pipelines.get(s["pipeline"]) or {}).get("deadline")} for s in schedules]
