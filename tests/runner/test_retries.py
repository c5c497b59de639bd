"""Retries of a step by its exit code, with backoff, on the fake engine and real git remotes."""

from __future__ import annotations

import json
import threading

import pytest
from fastapi.testclient import TestClient
from maoctl_kit import run_maoctl
from runkit import git
from served_kit import Served
from waiting import wait_for

from mao.api.app import create_app
from mao.events import StepRetried
from mao.models import RetryPolicy
from mao.runs.retries import retry_delay


def flaky(spec, on_log) -> int:
    """Writes attempt-<n>.txt; exits with the code CODES lists for its attempt (0 past its end)."""
    attempt = int(spec.env["MAO_ATTEMPT"])
    (spec.output_dir / f"attempt-{attempt}.txt").write_text(f"attempt {attempt}\n")
    codes = [int(c) for c in spec.env.get("CODES", "").split(",") if c]
    code = codes[attempt - 1] if attempt <= len(codes) else 0
    on_log(f"attempt {attempt} exits {code}")
    return code


@pytest.fixture
def flaky_tool(instance, executor):
    executor.tools["img/flaky"] = flaky
    from mao.models import ToolIn

    instance.catalog.add_tool(ToolIn(name="flaky", image="img/flaky"))


def one_step(codes: str, retries: dict | None) -> dict:
    step = {"name": "try", "tool": "flaky", "output_dataset": "observations", "env": {"CODES": codes}}
    if retries is not None:
        step["retries"] = retries
    return {"name": "flaky", "steps": [step]}


def test_backoff_doubles_and_is_capped():
    policy = RetryPolicy(max=5, backoff="10s", max_delay="35s")
    assert [retry_delay(policy, n) for n in range(1, 6)] == [10, 20, 35, 35, 35]


def test_retried_codes_run_again_and_the_last_attempt_is_committed(instance, define, remotes, flaky_tool):
    define(one_step("75,75", {"max": 3, "backoff": 0.05, "on_exit_codes": [75], "never_on_exit_codes": [2]}))
    retried: list[StepRetried] = []
    instance.events.subscribe(retried.append, StepRetried)

    run_id = instance.runner.run_sync("flaky")
    run = instance.store.get_run(run_id)
    assert run.status == "succeeded", run.error
    (step,) = run.steps
    assert [(a.number, a.status, a.exit_code) for a in step.attempts] == [
        (1, "failed", 75),
        (2, "failed", 75),
        (3, "succeeded", 0),
    ]
    assert [a.retry_delay_s for a in step.attempts] == [0.05, 0.1, None]
    assert all(a.duration_s >= 0 and a.finished_at >= a.started_at for a in step.attempts)
    assert [(e.attempt, e.exit_code, e.delay_s) for e in retried] == [(2, 75, 0.05), (3, 75, 0.1)]
    # only the last attempt's output is in the step's commit
    files = git(remotes["observations"], "ls-tree", "--name-only", step.output_commit).split()
    assert files == ["attempt-3.txt"]
    # each container line is tagged with its attempt
    tagged = [(line.attempt, line.line) for line in instance.store.logs(run_id) if line.line.startswith("attempt ")]
    assert (1, "attempt 1 exits 75") in tagged
    assert (3, "attempt 3 exits 0") in tagged
    assert any(a is None and "attempt 2 of 4 in 0.05s" in t for a, t in tagged)
    text = instance.metrics.exposition().decode()
    assert 'mao_step_retries_total{pipeline="flaky",step="try"} 2.0' in text


def test_never_codes_and_other_codes_are_not_retried(instance, define, flaky_tool):
    define(one_step("2", {"max": 3, "backoff": 0.05, "never_on_exit_codes": [2]}))
    run = instance.store.get_run(instance.runner.run_sync("flaky"))
    assert run.status == "failed"
    assert [(a.number, a.exit_code) for a in run.steps[0].attempts] == [(1, 2)]
    assert any("not retried for that code" in line.line for line in instance.store.logs(run.id))

    instance.pipelines.remove("flaky", unregister=True)
    define(one_step("3", {"max": 3, "backoff": 0.05, "on_exit_codes": [75]}))
    run = instance.store.get_run(instance.runner.run_sync("flaky"))
    assert run.status == "failed"
    assert len(run.steps[0].attempts) == 1


def test_retries_stop_after_max(instance, define, flaky_tool):
    define(one_step("75,75,75,75", {"max": 2, "backoff": 0.01}))
    run = instance.store.get_run(instance.runner.run_sync("flaky"))
    assert run.status == "failed"
    assert [a.exit_code for a in run.steps[0].attempts] == [75, 75, 75]
    assert run.steps[0].exit_code == 75
    assert any("no retries left (2)" in line.line for line in instance.store.logs(run.id))


def test_a_step_without_retries_has_one_attempt(instance, define, flaky_tool):
    define(one_step("75", None))
    run = instance.store.get_run(instance.runner.run_sync("flaky"))
    assert run.status == "failed"
    assert [(a.number, a.exit_code, a.retry_delay_s) for a in run.steps[0].attempts] == [(1, 75, None)]


def test_cancel_during_the_backoff_ends_the_run_at_once(instance, define, flaky_tool):
    define(one_step("75,75", {"max": 3, "backoff": "1h", "max_delay": "1h"}))
    waiting = threading.Event()
    instance.events.subscribe(lambda _e: waiting.set(), StepRetried)
    run_id = instance.runner.start("flaky")
    wait_for(waiting.is_set, 30, "the first retry to be announced")
    instance.runner.cancel(run_id)
    run = wait_for(
        lambda: (r := instance.store.get_run(run_id)).status not in ("pending", "running") and r,
        30,
        "the cancelled run to end",
    )
    assert run.status == "cancelled"
    assert [a.number for a in run.steps[0].attempts] == [1]
    assert "waiting to retry" in (run.steps[0].error or "")


@pytest.fixture
def api(instance):
    with TestClient(create_app(instance=instance, background=False), headers={"Origin": "http://testserver"}) as client:
        yield client


def test_the_attempts_in_the_api_the_run_page_and_maoctl(instance, define, flaky_tool, api):
    define(one_step("75", {"max": 2, "backoff": 0.05, "on_exit_codes": [75]}))
    run_id = instance.runner.run_sync("flaky")

    step = api.get(f"/runs/{run_id}").json()["steps"][0]
    assert [(a["number"], a["status"], a["exit_code"], a["retry_delay"]) for a in step["attempts"]] == [
        (1, "failed", 75, 0.05),
        (2, "succeeded", 0, None),
    ]
    lines = api.get(f"/runs/{run_id}/logs").json()["lines"]
    assert {"attempt": 2, "line": "attempt 2 exits 0"}.items() <= next(
        line for line in lines if line["line"] == "attempt 2 exits 0"
    ).items()

    page = api.get(f"/ui/runs/{run_id}").text
    assert 'data-attempt="1">attempt 1: <span class="badge st-failed">failed</span> <span class="muted">exit 75' in page

    with Served.api(instance=instance, port=0) as server:
        code, out, err = run_maoctl(["--url", server.url, "runs", "show", str(run_id)], env={"COLUMNS": "120"})
        assert code == 0, err
        assert "Attempts" in out
        rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["try"]]
        assert ["try", "1", "failed", "75"] in [r[:4] for r in rows]
        assert ["try", "2", "succeeded", "0"] in [r[:4] for r in rows]
        code, out, err = run_maoctl(["--url", server.url, "runs", "show", str(run_id), "--json"])
        assert code == 0, err
        assert [a["exit_code"] for a in json.loads(out)["steps"][0]["attempts"]] == [75, 0]
        code, out, err = run_maoctl(["--url", server.url, "runs", "logs", str(run_id)])
        assert code == 0, err
        assert "try | attempt 1 exits 75" in out and "try#2 | attempt 2 exits 0" in out
