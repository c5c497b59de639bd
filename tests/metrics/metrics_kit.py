"""Shared bits of the metrics tests: fake tools, pipelines, and reading an exposition."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-test-token-0123456789abcdefghijklmnop"


def collect(spec, on_log) -> int:
    with (spec.output_dir / "observations.csv").open("a") as fh:
        fh.write(f"run {spec.run_id}\n")
    on_log("collected")
    return 0


def fail(spec, on_log) -> int:
    on_log("something went wrong")
    return 3


def pipeline(name: str, tool: str = "collector", dataset: str = "observations") -> dict[str, Any]:
    return {"name": name, "steps": [{"name": "collect", "tool": tool, "output_dataset": dataset}]}


def families(text: str) -> dict[str, Any]:
    """Metric families by name (a counter's name without ``_total``, as the parser gives it)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called exactly ``name`` (``mao_runs``, ``mao_x_total``, ``mao_y_count``)."""
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def value(text: str, name: str, **labels: str) -> float | None:
    for got, v in samples(text, name):
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return None


def runs_by_pipeline_and_status(runs: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((run["pipeline"], run["status"]) for run in runs)
