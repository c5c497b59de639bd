"""Files a tool writes beside its output that are out of bounds (mao.untrusted): a deep or
non-JSON ``mao-metrics.json`` marks the step suspect, a deep ``insights.json`` is not
published, and one bad insight already in the registry never breaks the listings."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from maoctl_kit import run_maoctl
from served_kit import Served

from mao.api.app import create_app
from mao.errors import NotFound
from mao.insights import get_insight, list_insights, read_insights
from mao.models import ToolIn
from mao.store.metrics import MetricStore
from mao.untrusted import MAX_JSON_DEPTH


def deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.fixture
def step(instance, define):
    """``step(metrics=None, insight=None)``: pipeline ``q``'s step ``collect`` writes these texts
    to ``mao-metrics.json`` and ``insights.json``; returns the finished run."""

    instance.catalog.add_tool(ToolIn(name="reporter", image="img/report"))
    define({"name": "q", "steps": [{"name": "collect", "tool": "reporter", "output_dataset": "observations"}]})

    def run(metrics: str | None = None, insight: str | None = None):
        def tool(spec, on_log) -> int:
            (spec.output_dir / "rows.csv").write_text(f"run {spec.run_id}\n")
            if metrics is not None:
                (spec.output_dir / "mao-metrics.json").write_text(metrics)
            if insight is not None:
                (spec.output_dir / "insights.json").write_text(insight)
            return 0

        instance.executor.tools["img/report"] = tool
        return instance.store.get_run(instance.runner.run_sync("q"))

    return run


@pytest.mark.parametrize(
    "metrics, why",
    [
        ("[" * 20_000 + "]" * 20_000, f"nested deeper than {MAX_JSON_DEPTH} levels"),
        ('{"rows": ' + "[" * 400 + "]" * 400 + "}", f"nested deeper than {MAX_JSON_DEPTH} levels"),
        ('{"rows\\n": 1}', "invalid metric name 'rows\\n'"),
        ('{"rows": Infinity}', "Infinity is not a number JSON allows"),
    ],
    ids=["20000-deep", "400-deep", "name-with-newline", "infinity"],
)
def test_an_unusable_metrics_file_marks_the_step_suspect(instance, step, metrics, why) -> None:
    done = step(metrics=metrics)
    assert done.status == "succeeded", done.error
    assert done.steps[0].suspect is True
    assert done.steps[0].suspect_detail.startswith("invalid mao-metrics.json: ")
    assert why in done.steps[0].suspect_detail
    assert MetricStore(instance.store).series("q") == []


@pytest.mark.parametrize(
    "insight, why",
    [
        (json.dumps({"a": deep_list(400)}), f"nested deeper than {MAX_JSON_DEPTH} levels"),
        ("[" * 30_000 + "]" * 30_000, f"nested deeper than {MAX_JSON_DEPTH} levels"),
        ('{"a": "\\ud800"}', "not valid Unicode"),
        ('{"a": NaN}', "NaN is not a number JSON allows"),
    ],
    ids=["400-deep", "30000-deep", "surrogate", "nan"],
)
def test_an_unsafe_insight_is_not_published(instance, step, insight, why) -> None:
    done = step(metrics='{"rows": 1}', insight=insight)
    assert done.status == "succeeded" and done.steps[0].suspect is False
    notes = [line.line for line in instance.store.logs(done.id) if line.line.startswith("insights.json not published")]
    assert len(notes) == 1 and why in notes[0]
    assert list_insights(instance.registry) == []


def test_an_insight_at_the_depth_limit_is_published(instance, step) -> None:
    value = deep_list(MAX_JSON_DEPTH)
    done = step(insight=json.dumps(value))
    assert done.status == "succeeded"
    assert get_insight(instance.registry, "q", "collect")["value"] == value


@pytest.fixture
def poisoned(instance, step):
    """A published insight ``q/collect``, and a poisoned one ``q/poisoned`` as an older
    version or another member could have left it in the registry."""
    good = step(insight='{"top": "nginx"}')
    instance.registry.put("insights/q/poisoned", {"value": deep_list(400), "run_id": 9, "instance": "rogue"})
    instance.registry.put("insights/q/wrongtype", {"value": 1, "run_id": "nine"})
    return good


def test_readers_skip_a_poisoned_insight(instance, poisoned, caplog) -> None:
    items, skipped = read_insights(instance.registry)
    assert [(i["step"], i["run_id"]) for i in items] == [("collect", poisoned.id)]
    assert [s["key"] for s in skipped] == ["insights/q/poisoned", "insights/q/wrongtype"]
    assert "nested deeper" in skipped[0]["reason"] and "run_id is a str" in skipped[1]["reason"]
    assert "insight 'insights/q/poisoned' skipped: it is nested deeper" in caplog.text
    with pytest.raises(NotFound, match="cannot be served: it is nested deeper"):
        get_insight(instance.registry, "q", "poisoned")


def test_the_api_lists_around_a_poisoned_insight(instance, poisoned) -> None:
    with TestClient(create_app(instance=instance, background=False)) as api:
        listed = api.get("/insights")
        assert listed.status_code == 200, listed.text
        assert [i["step"] for i in listed.json()] == ["collect"]
        assert listed.headers["X-MAO-Skipped-Insights"] == "insights/q/poisoned, insights/q/wrongtype"
        one = api.get("/insights/q/poisoned")
        assert one.status_code == 404
        assert one.json()["error"]["details"]["skipped"][0]["key"] == "insights/q/poisoned"
        assert api.get("/insights/q/collect").json()["value"] == {"top": "nginx"}
        documented = api.get("/openapi.json").json()["paths"]["/insights"]["get"]["responses"]["200"]
        assert "X-MAO-Skipped-Insights" in documented["headers"]


def test_maoctl_lists_around_a_poisoned_insight(instance, poisoned) -> None:
    with Served.api(instance=instance, port=0) as server:
        code, out, err = run_maoctl(["--url", server.url, "insights", "list"])
        assert code == 0, err
        assert "q/collect" in out and "poisoned" not in out
        assert "insights/q/poisoned" in err and "insights/q/wrongtype" in err
        code, out, err = run_maoctl(["--url", server.url, "insights", "list", "--json"])
        assert code == 0 and [i["step"] for i in json.loads(out)] == ["collect"]


def test_a_new_insight_replaces_a_poisoned_one(instance, step) -> None:
    instance.registry.put("insights/q/collect", {"value": deep_list(400), "published_at": "9999-01-01T00:00:00"})
    done = step(insight='{"fresh": true}')
    assert get_insight(instance.registry, "q", "collect")["run_id"] == done.id
