"""The dashboard's line charts, drawn by the server as SVG: geometry here, markup in
``templates/_charts.html``.

Each chart is a :class:`Chart`: its plot area, axes, bands, lines and points in the SVG's
own units, every point with the data it shows (``data-*`` attributes and a ``<title>``),
and the same data as table rows for readers who do not see the picture. Colours come from
CSS classes, so the charts follow the dashboard's light and dark themes; nothing runs in
the browser.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mao.models import MetricRule
from mao.status import RunStatus

SUSPECT = "suspect"
"""The status the dashboard shows for a run or step that succeeded with a broken control-metric rule."""

WIDTH, HEIGHT = 640.0, 220.0
LEFT, RIGHT, TOP, BOTTOM = 58.0, 14.0, 12.0, 30.0
SERIES_CLASSES = 6
"""Distinct series colours (``s0`` … ``s5`` in the stylesheet); more series reuse them."""


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass
class Point:
    x: float
    y: float
    title: str
    data: dict[str, str]
    cls: str = ""
    href: str | None = None
    marked: bool = False
    """Drawn as a larger square instead of a dot (a suspect value, a failed run)."""


@dataclass
class Series:
    label: str
    cls: str
    path: str = ""


@dataclass
class Chart:
    """One chart: ``kind`` and ``ident`` name it (``data-chart``, element ids), ``title`` and
    ``desc`` say what it shows, ``columns``/``rows`` are its table."""

    kind: str
    ident: str
    title: str
    desc: str
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)
    band_label: str = ""
    series: list[Series] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    row_links: list[str] = field(default_factory=list)
    """Per row, the page of the run it shows (its "Run" cell links there)."""
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT
    top: float = TOP
    bottom: float = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return not self.points


# ---------------------------------------------------------------------------- scales


def num(value: float) -> str:
    """A value as a short, exact-enough label (``0.25``, ``1200``, ``3.4e+07``)."""
    return f"{value:.4g}" if value == value else "NaN"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) covering ``low``..``high``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    value = start
    while value <= high + step * 1e-9 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


class Scale:
    """A linear map from ``low..high`` onto pixels ``start..end`` (``end`` < ``start`` for y)."""

    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        if high <= low:
            low, high = low - 1.0, high + 1.0
        self.low, self.high, self.start, self.end = low, high, start, end

    def __call__(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return round(self.start + share * (self.end - self.start), 2)


def y_scale(values: Iterable[float], seconds: bool = False) -> tuple[Scale, list[Tick]]:
    """The y axis of ``values`` (padded to round ticks) and its labelled ticks."""
    finite = [v for v in values if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if seconds:
        low = 0.0
    if low == high:
        low, high = low - (abs(low) * 0.1 or 1.0), high + (abs(high) * 0.1 or 1.0)
    ticks = nice_ticks(low, high)
    scale = Scale(ticks[0], ticks[-1], HEIGHT - BOTTOM, TOP)
    label = duration_label if seconds else num
    return scale, [Tick(scale(t), label(t)) for t in ticks]


def duration_label(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:.3g} h"


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_label(moment: datetime, span_seconds: float) -> str:
    """A UTC time, as precise as a span of ``span_seconds`` needs (``0`` for a lone time)."""
    moment = moment.astimezone(UTC)
    if 0 < span_seconds < 3600:
        return moment.strftime("%H:%M:%S")
    if span_seconds < 2 * 86400:
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d")


def time_ticks(low: datetime, high: datetime, scale: Scale, count: int = 4) -> list[Tick]:
    """Up to ``count + 1`` labelled times from ``low`` to ``high``, none repeated."""
    span = (high - low).total_seconds()
    if span <= 0:
        return [Tick(scale(low.timestamp()), time_label(low, 0))]
    ticks: list[Tick] = []
    for i in range(count + 1):
        at = low.timestamp() + span * i / count
        label = time_label(datetime.fromtimestamp(at, UTC), span)
        if not ticks or ticks[-1].label != label:
            ticks.append(Tick(scale(at), label))
    return ticks


def path_through(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{x:g},{y:g}" for i, (x, y) in enumerate(points))


# ---------------------------------------------------------------------------- control metrics


def _band_points(
    values: Sequence[float], counted: Sequence[bool], rule: MetricRule
) -> list[tuple[float, float] | None]:
    """Per value, the (low, high) it had to stay within by the rule's change check (the mean
    of the ``window`` earlier counted values ± ``max_pct`` %), or None before there were enough."""
    change = rule.change
    out: list[tuple[float, float] | None] = []
    earlier: list[float] = []
    for value, counts in zip(values, counted, strict=True):
        if change is not None and len(earlier) >= change.window:
            recent = earlier[-change.window :]
            mean = math.fsum(recent) / len(recent)
            spread = abs(mean) * change.max_pct / 100
            out.append((mean - spread, mean + spread))
        else:
            out.append(None)
        if counts:
            earlier.append(value)
    return out


def _rule_text(rule: MetricRule | None) -> str:
    if rule is None:
        return "no rule"
    parts = []
    if rule.range is not None:
        low = num(rule.range.min) if rule.range.min is not None else "−∞"
        high = num(rule.range.max) if rule.range.max is not None else "∞"
        parts.append(f"range {low} to {high}")
    if rule.change is not None:
        parts.append(f"change at most {num(rule.change.max_pct)}% from the mean of the last {rule.change.window}")
    return "; ".join(parts)


def metric_chart(
    pipeline: str,
    step: str,
    metric: str,
    values: Sequence[dict[str, Any]],
    rule: MetricRule | None,
    counted: Callable[[int], bool] = lambda run_id: True,
) -> Chart:
    """A control metric's values (oldest first, as ``GET /pipelines/{name}/metrics`` lists
    them), its rule's band and its suspect values marked. ``counted(run_id)`` says whether a
    run's value counts as an earlier value for the change check (the check counts succeeded
    runs only)."""
    ident = f"metric-{step}-{metric}"
    suspect = sum(1 for v in values if v.get("suspect"))
    rule_text = _rule_text(rule)
    chart = Chart(
        kind="metric",
        ident=ident,
        title=f"{metric} of step {step}",
        desc=(
            f"{len(values)} value{'s' if len(values) != 1 else ''} of control metric {metric} of {pipeline}/{step}, "
            f"oldest first; {suspect} suspect; rule: {rule_text}"
        ),
        columns=["Run", "Slot or time", "Value", "Suspect"],
        band_label=rule_text,
    )
    if not values:
        return chart
    numbers = [float(v["value"]) for v in values]
    changes = _band_points(numbers, [counted(int(v["run_id"])) for v in values], rule) if rule and rule.change else []
    bounds = list(numbers)
    if rule is not None and rule.range is not None:
        bounds += [b for b in (rule.range.min, rule.range.max) if b is not None]
    bounds += [b for pair in changes if pair is not None for b in pair]
    y, chart.y_ticks = y_scale(bounds)
    n = len(values)
    x = Scale(0, max(1, n - 1), LEFT + 8, WIDTH - RIGHT - 8) if n > 1 else Scale(-1, 1, LEFT, WIDTH - RIGHT)
    if rule is not None and rule.range is not None:
        top = y(rule.range.max) if rule.range.max is not None else TOP
        bottom = y(rule.range.min) if rule.range.min is not None else HEIGHT - BOTTOM
        top, bottom = max(TOP, min(top, HEIGHT - BOTTOM)), max(TOP, min(bottom, HEIGHT - BOTTOM))
        corners = [(LEFT, top), (WIDTH - RIGHT, top), (WIDTH - RIGHT, bottom), (LEFT, bottom)]
        chart.bands.append(path_through(corners) + " Z")
    chart.bands.extend(_change_band(changes, x, y))
    line = []
    for i, v in enumerate(values):
        px, py = x(i), y(numbers[i])
        line.append((px, py))
        where = v.get("slot") or v.get("recorded_at") or ""
        flagged = bool(v.get("suspect"))
        chart.points.append(
            Point(
                px,
                py,
                f"run #{v['run_id']} · {where} · {metric} = {num(numbers[i])}" + (" · suspect" if flagged else ""),
                {
                    "run": str(v["run_id"]),
                    "step": step,
                    "metric": metric,
                    "value": repr(numbers[i]),
                    "slot": str(v.get("slot") or ""),
                    "suspect": "true" if flagged else "false",
                },
                cls="suspect" if flagged else "s0",
                href=f"/ui/runs/{v['run_id']}",
                marked=flagged,
            )
        )
        chart.rows.append([f"#{v['run_id']}", str(where), num(numbers[i]), "suspect" if flagged else ""])
        chart.row_links.append(f"/ui/runs/{v['run_id']}")
    chart.series.append(Series(metric, "s0", path_through(line)))
    first = values[0].get("slot") or values[0].get("recorded_at")
    last = values[-1].get("slot") or values[-1].get("recorded_at")
    moments = [parse_time(first), parse_time(last)]
    span = abs((moments[1] - moments[0]).total_seconds()) if moments[0] and moments[1] else 0
    chart.x_ticks = [
        Tick(x(0), time_label(moments[0], span) if moments[0] else str(first)),
        *([Tick(x(n - 1), time_label(moments[1], span) if moments[1] else str(last))] if n > 1 else []),
    ]
    return chart


def _change_band(changes: Sequence[tuple[float, float] | None], x: Scale, y: Scale) -> list[str]:
    """The change check's band as closed paths, one per run of values that had one."""
    paths, run = [], []
    for i, pair in enumerate([*changes, None]):
        if pair is not None:
            run.append((i, pair))
            continue
        if run:
            half = (x(1) - x(0)) / 2 if len(changes) > 1 else 8.0
            upper = [(x(i) - half, y(high)) for i, (_, high) in run[:1]] + [(x(i), y(high)) for i, (_, high) in run]
            upper.append((x(run[-1][0]) + half, y(run[-1][1][1])))
            lower = [(x(run[-1][0]) + half, y(run[-1][1][0]))] + [(x(i), y(low)) for i, (low, _) in reversed(run)]
            lower.append((x(run[0][0]) - half, y(run[0][1][0])))
            clipped = [(px, max(TOP, min(py, HEIGHT - BOTTOM))) for px, py in upper + lower]
            clipped = [(max(LEFT, min(px, WIDTH - RIGHT)), py) for px, py in clipped]
            paths.append(path_through(clipped) + " Z")
            run = []
    return paths


# ---------------------------------------------------------------------------- run durations


@dataclass(frozen=True)
class Timed:
    """One finished run (or step of one) on a durations chart."""

    series: str
    at: datetime
    seconds: float
    run_id: int
    status: str
    step: str | None = None


def durations_chart(ident: str, title: str, items: Sequence[Timed], what: str) -> Chart:
    """Durations over time (x: when the run was created), one line per series (a pipeline,
    or a run and its steps), each point a run or a step of one, failed ones marked."""
    names = list(dict.fromkeys(item.series for item in items))
    chart = Chart(
        kind="durations",
        ident=ident,
        title=title,
        desc=(
            f"{len(items)} duration{'s' if len(items) != 1 else ''} of {what} over time, "
            f"{len(names)} line{'s' if len(names) != 1 else ''}: {', '.join(names) or 'none'}"
        ),
        columns=["Line", "Run", "Created", "Duration", "Status"],
    )
    if not items:
        return chart
    y, chart.y_ticks = y_scale([item.seconds for item in items], seconds=True)
    low = min(item.at for item in items)
    high = max(item.at for item in items)
    x = Scale(low.timestamp(), high.timestamp(), LEFT + 8, WIDTH - RIGHT - 8)
    if high == low:
        x = Scale(low.timestamp() - 1, high.timestamp() + 1, LEFT, WIDTH - RIGHT)
    chart.x_ticks = time_ticks(low, high, x) if high > low else [Tick(x(low.timestamp()), time_label(low, 0))]
    for number, name in enumerate(names):
        cls = f"s{number % SERIES_CLASSES}"
        mine = sorted((item for item in items if item.series == name), key=lambda item: (item.at, item.run_id))
        chart.series.append(Series(name, cls, path_through([(x(i.at.timestamp()), y(i.seconds)) for i in mine])))
        for item in mine:
            data = {
                "run": str(item.run_id),
                "series": name,
                "seconds": repr(item.seconds),
                "status": item.status,
                "created": item.at.isoformat(),
            }
            if item.step is not None:
                data["step"] = item.step
            bad = item.status not in (RunStatus.SUCCEEDED, SUSPECT)
            chart.points.append(
                Point(
                    x(item.at.timestamp()),
                    y(item.seconds),
                    f"{name} · run #{item.run_id} · {duration_label(round(item.seconds, 1))} · {item.status}",
                    data,
                    cls=cls,
                    href=f"/ui/runs/{item.run_id}",
                    marked=bad,
                )
            )
            chart.rows.append(
                [name, f"#{item.run_id}", time_label(item.at, 0), duration_label(round(item.seconds, 1)), item.status]
            )
            chart.row_links.append(f"/ui/runs/{item.run_id}")
    return chart
