"""Control metrics and insights through the runner, the API and maoctl (fake engine, real git)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from maoctl_kit import run_maoctl
from runkit import git
from served_kit import Served

from mao.api.app import create_app
from mao.errors import NotFound, RegistryUnavailable
from mao.events import MetricSuspect
from mao.insights import get_insight, list_insights
from mao.models import ToolIn
from mao.offline import FederationQueue
from mao.store.metrics import MetricStore

RULES = {"rows": {"change": {"max_pct": 6, "window": 2}}, "temperature": {"range": {"min": -50, "max": 60}}}


def reporter(values: list[dict], insight=None):
    """A tool writing one row, and each run the next of ``values`` to mao-metrics.json."""
    feed = iter(values)

    def tool(spec, on_log) -> int:
        metrics = next(feed)
        with (spec.output_dir / "rows.csv").open("a") as fh:
            fh.write(f"run {spec.run_id}\n")
        text = metrics if isinstance(metrics, str) else json.dumps(metrics)
        (spec.output_dir / "mao-metrics.json").write_text(text)
        if insight is not None:
            (spec.output_dir / "insights.json").write_text(json.dumps({"run": spec.run_id, **insight}))
        return 0

    return tool


@pytest.fixture
def quality(instance, define):
    """``quality(values, insight=None, rules=RULES)``: pipeline ``q``, step ``collect`` writing ``values``."""

    def make(values, insight=None, rules=RULES):
        instance.executor.tools["img/report"] = reporter(values, insight)
        instance.catalog.add_tool(ToolIn(name="reporter", image="img/report"))
        step = {"name": "collect", "tool": "reporter", "output_dataset": "observations"}
        define({"name": "q", "steps": [step | ({"metrics": rules} if rules else {})]})

    return make


def run(instance, slot=None):
    return instance.store.get_run(instance.runner.run_sync("q", slot=slot))


def test_a_metric_jumping_50_percent_in_the_third_run_marks_the_step_suspect(instance, quality, remotes):
    events = []
    instance.events.subscribe(events.append, MetricSuspect)
    quality([{"rows": 100, "temperature": 20}, {"rows": 102, "temperature": 21}, {"rows": 152, "temperature": 22}])
    first, second, third = run(instance), run(instance), run(instance)

    assert [r.status for r in (first, second, third)] == ["succeeded"] * 3
    assert [r.steps[0].suspect for r in (first, second, third)] == [False, False, True]
    step = third.steps[0]
    assert step.suspect_detail == "rows: 152 is 50.5% off the mean 101 of the last 2 (max 6%)"
    # the run still committed and merged
    assert step.merge_commit == git(remotes["observations"], "rev-parse", "ground-truth").strip()
    files = git(remotes["observations"], "ls-tree", "-r", "--name-only", "ground-truth").split()
    assert files == ["rows.csv"]
    history = git(remotes["observations"], "log", "--all", "--name-only", "--format=").split()
    assert "mao-metrics.json" not in history

    lines = [line.line for line in instance.store.logs(third.id)]
    assert "metrics: rows=152, temperature=22" in lines
    assert f"step collect is suspect: {step.suspect_detail}" in lines
    [event] = events
    assert event.payload() == {
        "run_id": third.id,
        "pipeline": "q",
        "step": "collect",
        "metric": "rows",
        "value": 152.0,
        "rule": "change",
        "detail": step.suspect_detail,
        "slot": None,
    }
    series = MetricStore(instance.store).series("q", metric="rows")
    assert [(p["value"], p["suspect"]) for p in series] == [(100, False), (102, False), (152, True)]


def test_range_and_invalid_files(instance, quality, remotes):
    quality([{"rows": 1, "temperature": 61}, '{"rows": NaN}', {"rows": 1, "temperature": -50}])
    hot, broken, cold = run(instance), run(instance), run(instance)
    assert hot.status == broken.status == cold.status == "succeeded"
    assert hot.steps[0].suspect_detail == "temperature: 61 is above the maximum 60"
    assert broken.steps[0].suspect is True
    assert broken.steps[0].suspect_detail.startswith("invalid mao-metrics.json: not JSON")
    assert cold.steps[0].suspect is False
    # nothing recorded from the invalid file; the earlier suspect value still counts in the window
    assert [p["run_id"] for p in MetricStore(instance.store).series("q", metric="rows")] == [hot.id, cold.id]
    assert "mao-metrics.json" not in git(remotes["observations"], "ls-tree", "-r", "--name-only", "ground-truth")


def test_metrics_without_rules_are_recorded_and_never_suspect(instance, quality):
    quality([{"rows": 1}, {"rows": 1000}, {"rows": 0}], rules=None)
    runs = [run(instance) for _ in range(3)]
    assert not any(r.steps[0].suspect for r in runs)
    assert [p["value"] for p in MetricStore(instance.store).series("q")] == [1, 1000, 0]


def test_a_failed_run_does_not_count_in_the_baseline(instance, define, quality):
    quality([{"rows": 100}, {"rows": 100}, {"rows": 500}, {"rows": 103}])
    run(instance)
    run(instance)
    instance.executor.tools["img/report"], tool = (lambda spec, on_log: 1), instance.executor.tools["img/report"]
    assert run(instance).status == "failed"  # its container failed: nothing recorded
    instance.executor.tools["img/report"] = tool
    assert run(instance).steps[0].suspect is True  # 500
    assert run(instance).steps[0].suspect is True  # 103 against the mean of 100 and 500
    assert len(MetricStore(instance.store).series("q")) == 4


def test_insights_are_published_with_their_provenance(instance, quality, remotes):
    quality([{"rows": 1}, {"rows": 1}], insight={"top": ["nginx", "redis"]})
    with pytest.raises(NotFound, match="no insight published for step 'collect' of pipeline 'q'"):
        get_insight(instance.registry, "q", "collect")
    first = run(instance, slot="2026-11-28T12:00:00Z")
    insight = get_insight(instance.registry, "q", "collect")
    assert insight["value"] == {"run": first.id, "top": ["nginx", "redis"]}
    assert insight["run_id"] == first.id and insight["instance"] == "node-a"
    assert insight["slot"] == "2026-11-28T12:00:00Z" and insight["suspect"] is False
    assert insight["commit"] == first.steps[0].output_commit
    second = run(instance)
    [listed] = list_insights(instance.registry)
    assert listed["pipeline"] == "q" and listed["step"] == "collect" and listed["run_id"] == second.id
    assert "insights.json" not in git(remotes["observations"], "ls-tree", "-r", "--name-only", "ground-truth")


def test_an_invalid_insight_is_not_published_and_does_not_mark_the_step(instance, quality):
    quality([{"rows": 1}], rules=None)
    tool = instance.executor.tools["img/report"]

    def bad_insight(spec, on_log) -> int:
        (spec.output_dir / "insights.json").write_text("{oops")
        return tool(spec, on_log)

    instance.executor.tools["img/report"] = bad_insight
    done = run(instance)
    assert done.status == "succeeded" and done.steps[0].suspect is False
    assert any(line.line.startswith("insights.json not published: not JSON") for line in instance.store.logs(done.id))
    assert list_insights(instance.registry) == []


def test_an_insight_waits_for_the_registry(instance, quality, monkeypatch):
    quality([{"rows": 1}, {"rows": 1}], insight={"n": 1})
    registry = instance.registry
    real_put = registry.put

    def put(key, value, lease=None):
        if key.startswith("insights/"):
            raise RegistryUnavailable("the registry is away")
        return real_put(key, value, lease)

    monkeypatch.setattr(registry, "put", put)
    first = run(instance)
    assert first.status == "succeeded"
    assert first.steps[0].details["federation"] == "pending"
    [task] = FederationQueue(instance.store).pending()
    assert task.kind == "insight"
    monkeypatch.setattr(registry, "put", real_put)
    assert instance.replayer.replay_once() == 1
    assert get_insight(registry, "q", "collect")["run_id"] == first.id
    assert instance.store.get_run(first.id).steps[0].details["federation"] == "done"

    # a queued insight older than the registry's is dropped at replay
    monkeypatch.setattr(registry, "put", put)
    stale = run(instance)
    monkeypatch.setattr(registry, "put", real_put)
    newer = dict(get_insight(registry, "q", "collect"), published_at="2999-01-01T00:00:00+00:00", run_id=99)
    registry.put("insights/q/collect", {k: v for k, v in newer.items() if k not in ("pipeline", "step")})
    instance.replayer.replay_once()
    assert get_insight(registry, "q", "collect")["run_id"] == 99
    assert any("a newer one is at insights/q/collect" in line.line for line in instance.store.logs(stale.id))


# ------------------------------------------------------------------ API and maoctl


@pytest.fixture
def api(instance):
    client = TestClient(create_app(instance=instance, background=False))
    with client:
        yield client


def test_api_metrics_series_and_insights(instance, quality, api):
    quality([{"rows": 100, "temperature": 1}, {"rows": 100, "temperature": 2}, {"rows": 200, "temperature": 3}], {})
    ids = [run(instance).id for _ in range(3)]

    series = api.get("/pipelines/q/metrics").json()
    assert len(series) == 6
    rows = api.get("/pipelines/q/metrics", params={"metric": "rows", "step": "collect"}).json()
    assert [(p["run_id"], p["value"], p["suspect"]) for p in rows] == [
        (ids[0], 100, False),
        (ids[1], 100, False),
        (ids[2], 200, True),
    ]
    assert set(rows[0]) == {"run_id", "step", "metric", "value", "slot", "recorded_at", "suspect"}
    assert [p["value"] for p in api.get("/pipelines/q/metrics", params={"metric": "rows", "limit": 1}).json()] == [200]
    assert api.get("/pipelines/q/metrics", params={"step": "other"}).json() == []
    missing = api.get("/pipelines/nope/metrics")
    assert missing.status_code == 404 and "pipeline 'nope' is not defined" in missing.json()["error"]["message"]
    for params in ({"metric": "a b"}, {"limit": 0}, {"step": "../x"}):
        assert api.get("/pipelines/q/metrics", params=params).status_code == 400

    step = api.get(f"/runs/{ids[2]}").json()["steps"][0]
    assert step["suspect"] is True and step["suspect_detail"].startswith("rows: 200 is 100.0% off")
    assert api.get(f"/runs/{ids[0]}").json()["steps"][0]["suspect"] is False

    [listed] = api.get("/insights").json()
    assert listed["pipeline"] == "q" and listed["run_id"] == ids[2] and listed["value"] == {"run": ids[2]}
    assert api.get("/insights/q/collect").json()["suspect"] is True
    assert api.get("/insights/q/other").status_code == 404
    assert api.get("/insights/q/a%20b").status_code == 400


@pytest.fixture
def served(instance):
    with Served.api(instance=instance, port=0) as server:
        yield server.url


def test_maoctl_pipeline_metrics_and_insights(instance, quality, served):
    quality([{"rows": 100}, {"rows": 100}, {"rows": 250}], {"top": "nginx"})
    ids = [run(instance, slot=f"2026-11-28T1{i}:00:00Z").id for i in range(3)]

    code, out, err = run_maoctl(["--url", served, "pipeline", "metrics", "q", "--metric", "rows", "--json"])
    assert code == 0, err
    assert [(p["run_id"], p["suspect"]) for p in json.loads(out)] == [(ids[0], False), (ids[1], False), (ids[2], True)]

    code, out, err = run_maoctl(
        ["--url", served, "pipeline", "metrics", "q", "--step", "collect"], env={"COLUMNS": "80"}
    )
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 80
    last = [line for line in out.splitlines() if line.strip().startswith(str(ids[2]))]
    assert last and "250" in last[0] and "2026-11-28T12:00:00Z" in last[0] and "suspect" in last[0]

    code, out, err = run_maoctl(["--url", served, "pipeline", "metrics", "nope"])
    assert code != 0 and "pipeline 'nope' is not defined" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_maoctl(["--url", served, "pipeline", "metrics", "q", "--metric", "no good"])
    assert code != 0 and "invalid metric name" in err

    code, out, err = run_maoctl(["--url", served, "insights", "list", "--json"])
    assert code == 0, err
    assert [(i["pipeline"], i["step"], i["run_id"]) for i in json.loads(out)] == [("q", "collect", ids[2])]
    code, out, err = run_maoctl(["--url", served, "insights", "list"])
    assert code == 0 and "q/collect" in out and '"top": "nginx"' in out
    code, out, err = run_maoctl(["--url", served, "insights", "get", "q", "collect"])
    assert code == 0 and f'"run": {ids[2]}' in out and "node-a" in out
    code, out, err = run_maoctl(["--url", served, "insights", "get", "q", "other"])
    assert code != 0 and "no insight published for step 'other'" in err

    code, out, err = run_maoctl(["--url", served, "runs", "list", "--pipeline", "q"])
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.split()[:2] == [str(ids[2]), "q"])
    assert row.rstrip().endswith("collect ✓ suspect")
    assert [line for line in out.splitlines() if line.rstrip().endswith("suspect")] == [row]
    code, out, err = run_maoctl(["--url", served, "runs", "show", str(ids[2])])
    assert code == 0 and "suspect" in out and "rows: 250 is 150.0% off the mean 100" in out.replace("\n", " ")


def test_a_private_variable_never_reaches_the_registry_or_the_log(instance, define):
    secret = "s3cret-token-value"

    def leaky(spec, on_log) -> int:
        (spec.output_dir / "out.txt").write_text("ok\n")
        (spec.output_dir / "insights.json").write_text(json.dumps({"token": spec.env["TOKEN"]}))
        (spec.output_dir / "mao-metrics.json").write_text(json.dumps({spec.env["TOKEN"]: 1}))
        return 0

    instance.executor.tools["img/leaky"] = leaky
    instance.catalog.add_tool(ToolIn(name="leaky", image="img/leaky"))
    step = {"name": "leak", "tool": "leaky", "output_dataset": "observations", "env": {"TOKEN": "{{ TOKEN }}"}}
    define({"name": "q", "steps": [step], "private_variables": {"TOKEN": secret}})
    done = run(instance)
    assert done.status == "succeeded"
    assert done.steps[0].suspect_detail == (
        "invalid mao-metrics.json: a metric name holds the value of a private variable"
    )
    assert list_insights(instance.registry) == []
    assert MetricStore(instance.store).series("q") == []
    lines = [line.line for line in instance.store.logs(done.id)]
    assert any(line.startswith("insights.json not published: it holds the value of a private") for line in lines)
    assert not any(secret in line for line in lines)


def test_the_check_reports_what_it_found_and_leaves_the_step_row_to_the_launcher(instance, quality, tmp_path) -> None:
    from mao.runs.steps import RunInfo

    quality([])
    definition = instance.store.get_pipeline("q")
    recorded = instance.store.create_run("q", definition.steps)
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (worktree / "mao-metrics.json").write_text('{"rows": 100, "temperature": 99}')
    notes: list[str] = []

    run = RunInfo(recorded.id, "q", None, "manual", [])
    report = instance.runner.launcher.reports.check(run, definition.steps[0], worktree, notes.append)

    assert report.suspect and report.detail == "temperature: 99 is above the maximum 60"
    assert f"step collect is suspect: {report.detail}" in notes
    assert not (worktree / "mao-metrics.json").exists()
    row = instance.store.get_run(recorded.id).steps[0]  # written once, with the step's end
    assert row.suspect is False and row.suspect_detail is None and row.status == "pending"
