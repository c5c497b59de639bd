"""The charts' geometry (mao.ui.charts, heatmap, gitgraph): pure functions, no server."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from mao.models import MetricRule
from mao.ui.charts import Scale, Timed, durations_chart, metric_chart, nice_ticks, time_ticks
from mao.ui.gitgraph import git_graph, topo_order
from mao.ui.heatmap import heatmap


@pytest.mark.parametrize(("low", "high"), [(0, 1), (0.13, 0.17), (-3, 250), (1e6, 1.3e6), (5, 5), (-2.5, -2.5)])
def test_nice_ticks_cover_the_range_in_round_steps(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 12
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5, 10)


def _values(numbers, suspect=()):
    return [
        {"run_id": i + 1, "value": v, "slot": f"2026-01-0{i + 1}T00:00:00Z", "suspect": i in suspect}
        for i, v in enumerate(numbers)
    ]


def test_a_change_band_is_the_mean_of_the_counted_earlier_values_plus_or_minus_the_percentage():
    rule = MetricRule.model_validate({"change": {"max_pct": 20, "window": 2}})
    # run 2 failed: its value does not count, as the check counts succeeded runs only
    chart = metric_chart("p", "s", "m", _values([1.0, 9.0, 1.0, 1.0, 1.5], suspect={4}), rule, lambda run: run != 2)
    assert len(chart.points) == 5 and [p.marked for p in chart.points] == [False] * 4 + [True]
    y = {p.data["value"]: p.y for p in chart.points}
    xs = [p.x for p in chart.points]
    (band,) = chart.bands
    corners = [tuple(map(float, c[1:].split(","))) for c in band.replace(" Z", "").split()]
    at = {x: sorted(cy for cx, cy in corners if cx == x) for x in xs}
    assert at[xs[0]] == [] and at[xs[1]] == []  # fewer than 2 counted values before them
    # the 5th value is checked against the 3rd and 4th (the 2nd did not count): mean 1 ± 20 %
    scale = (y["1.0"] - y["1.5"]) / 0.5  # pixels per unit (y grows downwards)
    high, low = at[xs[4]]
    assert high == pytest.approx(y["1.0"] - 0.2 * scale, abs=0.02)
    assert low == pytest.approx(y["1.0"] + 0.2 * scale, abs=0.02)
    assert "change at most 20% from the mean of the last 2" in chart.desc


def test_a_range_band_spans_min_to_max_and_an_open_side_runs_to_the_edge():
    rule = MetricRule.model_validate({"range": {"min": 2}})
    chart = metric_chart("p", "s", "m", _values([1.0, 3.0, 4.0], suspect={0}), rule)
    (band,) = chart.bands
    ys = sorted({float(c.split(",")[1]) for c in band.replace(" Z", "").split()})
    assert ys[0] == chart.top  # no max: up to the top
    two = [p for p in chart.points if p.data["value"] in ("1.0", "3.0")]
    per_unit = two[0].y - two[1].y  # 2 units
    assert ys[1] == pytest.approx(two[0].y - per_unit / 2, abs=0.02)


def test_charts_of_nothing_or_one_value_draw_without_error():
    assert metric_chart("p", "s", "m", [], None).empty
    one = metric_chart("p", "s", "m", _values([7.0]), None)
    assert len(one.points) == 1 and not one.bands and one.y_ticks
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    single = durations_chart("d", "t", [Timed("p", moment, 3.0, 1, "succeeded")], "runs")
    assert len(single.points) == 1 and single.x_ticks
    assert durations_chart("d", "t", [], "runs").empty


def test_time_ticks_do_not_repeat_a_label():
    low = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    for span in (timedelta(seconds=3), timedelta(minutes=3), timedelta(hours=5), timedelta(days=9)):
        labels = [t.label for t in time_ticks(low, low + span, Scale(0, 1, 0, 1))]
        assert len(labels) == len(set(labels)) >= 2, labels


def test_durations_chart_one_line_per_series_and_failed_runs_marked():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    items = [
        Timed("a", start, 10.0, 1, "succeeded"),
        Timed("b", start + timedelta(minutes=1), 20.0, 2, "failed"),
        Timed("a", start + timedelta(minutes=2), 12.0, 3, "suspect"),
    ]
    chart = durations_chart("d", "t", items, "runs")
    assert [s.label for s in chart.series] == ["a", "b"]
    assert [(p.data["run"], p.marked) for p in chart.points] == [("1", False), ("3", False), ("2", True)]
    assert chart.y_ticks[0].label == "0 s"


def _commit(sha, parents, subject="", trailers=None):
    return {"sha": sha * 40, "parents": [p * 40 for p in parents], "subject": subject, "trailers": trailers or {}}


def test_topo_order_shows_a_merged_branch_right_after_its_merge():
    # git log's date order interleaved them (same second): M2 M1 N2 N1 G
    history = [_commit("d", "cb"), _commit("c", "ea"), _commit("b", "e"), _commit("a", "e"), _commit("e", "")]
    ordered = [c["sha"][0] for c in topo_order(history)]
    assert ordered == ["d", "b", "c", "a", "e"]


def test_a_merge_draws_its_branch_in_a_second_lane_and_an_older_parent_off_the_bottom():
    history = topo_order([_commit("m", "gn", "Merge"), _commit("n", "g"), _commit("g", "r")])
    graph = git_graph("d", history)
    assert [(n.sha[0], n.lane, n.kind) for n in graph.nodes] == [
        ("m", 0, "merge"),
        ("n", 1, "commit"),
        ("g", 0, "commit"),
    ]
    links = sorted((e.child[0], e.parent[0], e.beyond) for e in graph.edges)
    assert links == [("g", "r", True), ("m", "g", False), ("m", "n", False), ("n", "g", False)]
    tally = git_graph("d", [_commit("t", "g", "Tally", {"Mao-Vote-For": "x", "Mao-Slot": "s"}), _commit("g", "")])
    assert tally.nodes[0].kind == "tally" and "tally of slot s" in tally.nodes[0].title
    assert "1 tally, 1 commit" in tally.desc


def test_the_heatmap_has_every_slot_and_instance_and_marks_gaps():
    grid = {
        "instances": ["a", "b"],
        "slots": [
            {"slot": "2026-01-01T00:00:00Z", "cells": {"a": "delivered"}},
            {"slot": "2026-01-01T01:00:00Z", "cells": {"a": "missing", "b": "failed"}},
        ],
        "gaps": ["2026-01-01T01:00:00Z"],
    }
    chart = heatmap("p", grid)
    assert [(c.slot[11:13], c.instance, c.state) for c in chart.cells] == [
        ("00", "a", "delivered"),
        ("00", "b", "not_due"),
        ("01", "a", "missing"),
        ("01", "b", "failed"),
    ]
    assert [g.slot for g in chart.gaps] == ["2026-01-01T01:00:00Z"]
    assert chart.counts == {"delivered": 1, "failed": 1, "missing": 1, "not_due": 1}
    assert all(c.x + c.w <= chart.width for c in chart.cells)
