"""What the dashboard's pages show, read through the same services as the API's routes
(the store, :class:`~mao.store.metrics.MetricStore`, the coverage index, the insights in the
registry, the datasets' git history), shaped for the templates and the charts."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import ValidationError

from mao.coverage.window import parse_since
from mao.errors import MAOError
from mao.insights import read_insights
from mao.instance import Instance
from mao.models import MetricRule
from mao.operations import run_dict
from mao.status import RunStatus
from mao.store.metrics import MetricStore
from mao.ui.charts import SUSPECT, Chart, Timed, durations_chart, metric_chart, parse_time

T = TypeVar("T")

FAILURES = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CONFLICT, RunStatus.INTERRUPTED)
CHART_RUNS = 100
"""Runs a durations chart shows at most (the newest)."""
METRIC_POINTS = 200
"""Values a control metric's chart shows at most (the newest)."""
COVERAGE_WINDOW = "24h"
MAX_INSIGHT_CHARS = 2000
HEAD_WORKERS = 4


def section(read: Callable[[], T]) -> tuple[T | None, str | None]:
    """What ``read`` returns, or the error a page shows in its place."""
    try:
        return read(), None
    except MAOError as exc:
        return None, exc.message


# ---------------------------------------------------------------------------- runs


QUEUED = "queued"
"""A running step's shown status while its engine has not started it."""


def shown_status(run: dict[str, Any]) -> str:
    """A run's status as the dashboard shows it: ``suspect`` for a run that succeeded with a
    step whose control metrics broke their rule, else its status."""
    if run["status"] == RunStatus.SUCCEEDED and any(step.get("suspect") for step in run.get("steps", [])):
        return SUSPECT
    return str(run["status"])


def step_status(step: dict[str, Any]) -> str:
    """A step's status as the pages show it: ``suspect`` as for a run, ``queued`` for a running
    step its engine accepted but has not started."""
    if step["status"] == RunStatus.RUNNING and step.get("placement") == "queued":
        return QUEUED
    return SUSPECT if step["status"] == RunStatus.SUCCEEDED and step.get("suspect") else str(step["status"])


def run_view(run: Any) -> dict[str, Any]:
    """:func:`~mao.operations.run_dict` (what ``GET /runs/{id}`` answers) with the
    statuses the pages show: ``shown`` for the run, ``shown`` for each step."""
    out = run_dict(run)
    out["shown"] = shown_status(out)
    for step in out["steps"]:
        step["shown"] = step_status(step)
    return out


def recent_runs(instance: Instance, limit: int = 10) -> list[dict[str, Any]]:
    return [run_view(r) for r in instance.store.list_runs(None, None, limit)]


def last_failures(instance: Instance, limit: int = 5) -> list[dict[str, Any]]:
    """The newest runs that failed, timed out, hit a conflict or were interrupted."""
    found = [r for status in FAILURES for r in instance.store.list_runs(None, status, limit)]
    found.sort(key=lambda r: r.id, reverse=True)
    return [run_view(r) for r in found[:limit]]


def durations(runs: list[dict[str, Any]], per_step: bool) -> list[Timed]:
    """The finished runs (and, with ``per_step``, their steps) as points of a durations chart:
    one line per pipeline, or the run and one line per step."""
    items = []
    for run in runs:
        created = parse_time(run["created_at"])
        if created is None:
            continue
        if run["duration"] is not None:
            name = "whole run" if per_step else run["pipeline"]
            items.append(Timed(name, created, float(run["duration"]), run["id"], run["shown"]))
        if per_step:
            for step in run["steps"]:
                if step["duration"] is not None:
                    items.append(
                        Timed(
                            f"step {step['name']}",
                            created,
                            float(step["duration"]),
                            run["id"],
                            step["shown"],
                            step=step["name"],
                        )
                    )
    return items


def runs_durations_chart(runs: list[dict[str, Any]], pipeline: str = "", status: str = "") -> Chart:
    which = " ".join(part for part in (pipeline and f"of {pipeline}", status and f"({status})") if part)
    return durations_chart(
        "durations-runs",
        f"Run durations{' ' + which if which else ''}",
        durations(runs, per_step=False),
        f"the newest {len(runs)} runs{' ' + which if which else ''}, one line per pipeline",
    )


def pipeline_durations_chart(name: str, runs: list[dict[str, Any]]) -> Chart:
    return durations_chart(
        f"durations-{name}",
        f"Durations of {name}'s runs and steps",
        durations(runs, per_step=True),
        f"the newest {len(runs)} runs of {name}: the whole run and each step",
    )


# ---------------------------------------------------------------------------- control metrics


def metric_charts(instance: Instance, pipeline: dict[str, Any], runs: list[dict[str, Any]]) -> list[Chart]:
    """One chart per step and control metric this instance recorded for ``pipeline`` (the
    data of ``GET /pipelines/{name}/metrics``), with the step's rule for it."""
    name = pipeline["name"]
    values = MetricStore(instance.store).series(name, limit=METRIC_POINTS * 50)
    order = {step["name"]: index for index, step in enumerate(pipeline["steps"])}
    rules = {step["name"]: step.get("metrics") or {} for step in pipeline["steps"]}
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for value in values:
        grouped.setdefault((value["step"], value["metric"]), []).append(value)
    statuses: dict[int, str] = {run["id"]: run["status"] for run in runs}

    def counted(run_id: int) -> bool:
        return statuses.get(run_id, RunStatus.SUCCEEDED) == RunStatus.SUCCEEDED

    charts = []
    for step, metric in sorted(grouped, key=lambda key: (order.get(key[0], len(order)), key)):
        rule = _rule(rules.get(step, {}).get(metric))
        charts.append(metric_chart(name, step, metric, grouped[(step, metric)][-METRIC_POINTS:], rule, counted))
    return charts


def _rule(raw: Any) -> MetricRule | None:
    """A step's stored rule for a metric; None when it has none (or one this version cannot read)."""
    if not raw:
        return None
    try:
        return MetricRule.model_validate(raw)
    except ValidationError:
        return None


# ---------------------------------------------------------------------------- coverage, insights, datasets


def coverage_grid(instance: Instance, pipeline: str) -> tuple[dict[str, Any] | None, str | None]:
    """The grid of ``GET /federation/coverage?pipeline=…`` over the last 24 h, or the error."""
    return section(lambda: instance.coverage.coverage(pipeline, parse_since(COVERAGE_WINDOW)))


def insights_of(instance: Instance, pipeline: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The pipeline's insights as ``GET /insights`` lists them, each with its value as text."""

    def read() -> list[dict[str, Any]]:
        items = [item for item in read_insights(instance.registry)[0] if item["pipeline"] == pipeline]
        for item in items:
            text = json.dumps(item.get("value"), indent=2, ensure_ascii=False, sort_keys=True)
            item["text"] = text if len(text) <= MAX_INSIGHT_CHARS else text[:MAX_INSIGHT_CHARS] + "\n…"
        return items

    return section(read)


def dataset_heads(instance: Instance, datasets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each dataset's newest ``ground-truth`` commit (``{"commit": …}`` or ``{"error": …}``),
    read a few at a time."""

    def newest(name: str) -> dict[str, Any]:
        try:
            history = instance.datasets.log(name, datasets[name]["master"], limit=1)
        except MAOError as exc:
            return {"error": exc.message}
        return {"commit": history[0] if history else None}

    if not datasets:
        return {}
    with ThreadPoolExecutor(max_workers=min(HEAD_WORKERS, len(datasets)), thread_name_prefix="ui-heads") as pool:
        return dict(zip(datasets, pool.map(newest, datasets), strict=True))
