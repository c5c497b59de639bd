"""The coverage grid of a pipeline (``GET /federation/coverage``) as a heat map: one row per
instance, one column per slot, each cell coloured by what that instance did for that slot.
Geometry here, markup in ``templates/_charts.html``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mao.coverage.grid import DELIVERED, FAILED, MISSING, NOT_DUE, PENDING
from mao.ui.charts import parse_time, time_label

WIDTH = 640.0
ROW = 22.0
TOP, BOTTOM, RIGHT = 14.0, 30.0, 8.0
MAX_CELL = 40.0
LABEL_CHARS = 18
STATES = (DELIVERED, FAILED, MISSING, PENDING, NOT_DUE)
"""A cell's states, as the coverage grid names them (its marks, ``SYMBOLS``, are the table's:
the text twin of the colours)."""


@dataclass(frozen=True)
class Cell:
    x: float
    y: float
    w: float
    h: float
    slot: str
    instance: str
    state: str

    @property
    def title(self) -> str:
        return f"{self.slot} · {self.instance}: {self.state.replace('_', ' ')}"


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    full: str = ""


@dataclass
class Heatmap:
    pipeline: str
    ident: str
    title: str
    desc: str
    width: float = WIDTH
    height: float = TOP + BOTTOM
    left: float = 0.0
    cells: list[Cell] = field(default_factory=list)
    rows: list[Label] = field(default_factory=list)
    columns: list[Label] = field(default_factory=list)
    gaps: list[Cell] = field(default_factory=list)
    late: list[Cell] = field(default_factory=list)
    """The slots with no delivered run (or vote decision) by their deadline, outlined."""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.cells


def heatmap(pipeline: str, grid: dict[str, Any]) -> Heatmap:
    """The heat map of one coverage grid (the API's answer): cells for every slot × instance
    (``not_due`` where the grid has none), gap slots marked above their column."""
    instances: list[str] = list(grid.get("instances") or [])
    slots: list[dict[str, Any]] = list(grid.get("slots") or [])
    gaps = set(grid.get("gaps") or [])
    counts: dict[str, int] = {state: 0 for state in STATES}
    chart = Heatmap(
        pipeline=pipeline,
        ident=f"coverage-{pipeline}",
        title=f"Coverage of {pipeline}",
        desc="",
    )
    longest = max((len(name) for name in instances), default=4)
    chart.left = left = 10 + 7 * min(LABEL_CHARS, longest)
    cell_w = min(MAX_CELL, (WIDTH - left - RIGHT) / max(1, len(slots)))
    chart.height = TOP + ROW * max(1, len(instances)) + BOTTOM
    for row, name in enumerate(instances):
        shown = name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"
        chart.rows.append(Label(left - 6, TOP + ROW * row + ROW / 2 + 4, shown, name))
    for column, slot in enumerate(slots):
        x = round(left + column * cell_w, 2)
        for row, name in enumerate(instances):
            state = str(slot.get("cells", {}).get(name, NOT_DUE))
            counts[state] = counts.get(state, 0) + 1
            cell = Cell(x, TOP + ROW * row + 1, round(max(cell_w - 1, 0.6), 2), ROW - 2, str(slot["slot"]), name, state)
            chart.cells.append(cell)
        if slot["slot"] in gaps:
            chart.gaps.append(Cell(x, 2, round(max(cell_w - 1, 0.6), 2), TOP - 5, str(slot["slot"]), "", "gap"))
        if slot.get("deadline") == "missed":
            height = ROW * max(1, len(instances))
            chart.late.append(Cell(x, TOP, round(max(cell_w - 1, 0.6), 2), height, str(slot["slot"]), "", "late"))
    chart.columns = _slot_labels(slots, left, cell_w, chart.height - BOTTOM + 16)
    chart.counts = {state: n for state, n in counts.items() if n}
    summary = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in chart.counts.items()) or "no cell"
    chart.desc = (
        f"{len(slots)} slot{'s' if len(slots) != 1 else ''} × {len(instances)} "
        f"instance{'s' if len(instances) != 1 else ''} from {grid.get('since', '?')} to {grid.get('until', '?')}: "
        f"{summary}; {len(gaps)} gap{'s' if len(gaps) != 1 else ''} (slots no instance delivered)"
        + (f"; {len(chart.late)} past their deadline" if chart.late else "")
    )
    return chart


def _slot_labels(slots: list[dict[str, Any]], left: float, cell_w: float, y: float) -> list[Label]:
    """A few slots named under their columns: the first, the last and some between."""
    if not slots:
        return []
    first, last = parse_time(slots[0]["slot"]), parse_time(slots[-1]["slot"])
    span = (last - first).total_seconds() if first and last else 0
    picks = sorted({0, len(slots) - 1, *range(0, len(slots), max(1, len(slots) // 4))})
    labels: list[Label] = []
    last_x = -1e9
    for index in picks:
        x = left + index * cell_w + cell_w / 2
        if x - last_x < 90 and index != picks[-1]:
            continue
        if labels and x - last_x < 90:
            labels.pop()
        moment = parse_time(slots[index]["slot"])
        text = time_label(moment, span) if moment else str(slots[index]["slot"])
        labels.append(Label(round(min(max(x, left + 40), WIDTH - 44), 2), y, text))
        last_x = x
    return labels
