"""The run engine end to end, with a fake container engine and real git remotes."""

from __future__ import annotations

import threading
import time

import pytest
from runkit import TWO_STEPS, git
from waiting import wait_for

from mao.errors import Conflict, InvalidInput, MissingDependencies
from mao.models import PipelineIn
from mao.runs.environment import render_env


def test_two_step_pipeline_commits_merges_and_records(instance, define, remotes):
    define(TWO_STEPS)
    run_id = instance.runner.run_sync("two")
    run = instance.store.get_run(run_id)
    assert run.status == "succeeded", run.error
    collect, analyse = run.steps
    assert [s.status for s in run.steps] == ["succeeded", "succeeded"]
    assert collect.output_branch == "collect-node-a"
    assert collect.image_digest == "sha256:fake-img/collect"

    obs = remotes["observations"]
    branches = git(obs, "branch", "--format=%(refname:short)").split()
    assert set(branches) >= {"ground-truth", "collect-node-a"}
    assert git(obs, "rev-parse", "collect-node-a").strip() == collect.output_commit
    assert git(obs, "rev-parse", "ground-truth").strip() == collect.merge_commit
    # the next step read the input dataset's ground-truth at the merge commit
    assert analyse.input_commit == collect.merge_commit
    assert git(remotes["insights"], "show", "ground-truth:summary.txt") == "rows: 1\n"

    trailers = git(obs, "log", "-1", "--format=%(trailers:unfold)", collect.output_commit)
    for expected in (
        "Mao-Run: %d" % run_id,
        "Mao-Pipeline: two",
        "Mao-Step: collect",
        "Mao-Tool: collector",
        "Mao-Image: img/collect",
        "Mao-Image-Digest: sha256:fake-img/collect",
        "Mao-Input-Commit: none",
        "Mao-Instance: node-a",
    ):
        assert expected in trailers
    ins_trailers = git(remotes["insights"], "log", "-1", "--format=%(trailers:unfold)", analyse.output_commit)
    assert f"Mao-Input-Commit: {collect.merge_commit}" in ins_trailers

    assert instance.catalog.get_dataset("observations")["nodes"] == ["collect-node-a"]
    lines = [line.line for line in instance.store.logs(run_id)]
    assert "collected for run %d" % run_id in lines
    assert "analysed 1 rows" in lines


def test_a_step_naming_its_input_paths_reads_those_and_is_told_when_they_match_nothing(instance, define):
    reads = {"name": "analyse", "tool": "analyser", "input_dataset": "observations", "output_dataset": "insights"}
    define({"name": "two", "steps": [TWO_STEPS["steps"][0], reads | {"input_paths": ["observations.csv"]}]})
    run = instance.store.get_run(instance.runner.run_sync("two"))
    assert run.status == "succeeded", run.error
    define({"name": "elsewhere", "steps": [reads | {"name": "look", "input_paths": ["2026/*.csv"]}]})
    run_id = instance.runner.run_sync("elsewhere")
    assert instance.store.get_run(run_id).status == "failed"  # observations.csv is not in its view
    lines = [line.line for line in instance.store.logs(run_id)]
    assert "input_paths '2026/*.csv' match no file of observations" in lines


def test_second_run_builds_on_the_first(instance, define, remotes):
    define(TWO_STEPS)
    first = instance.runner.run_sync("two")
    second = instance.runner.run_sync("two")
    assert instance.store.get_run(second).status == "succeeded"
    assert git(remotes["insights"], "show", "ground-truth:summary.txt") == "rows: 2\n"
    assert git(remotes["observations"], "show", "ground-truth:observations.csv").count("\n") == 2
    assert first != second


def test_failing_tool_fails_the_run_and_stops(instance, define, remotes):
    define(
        {
            "name": "bad",
            "steps": [
                {"name": "boom", "tool": "failer", "output_dataset": "observations"},
                {"name": "after", "tool": "collector", "output_dataset": "insights"},
            ],
        }
    )
    run = instance.store.get_run(instance.runner.run_sync("bad"))
    assert run.status == "failed"
    assert run.steps[0].status == "failed" and run.steps[0].exit_code == 3
    assert "exit code 3" in run.steps[0].error
    assert run.steps[1].status == "cancelled"
    assert "boom" in run.error
    assert git(remotes["insights"], "branch", "--list").strip() == ""


def test_missing_tools_and_datasets_create_nothing(instance, define):
    with pytest.raises(MissingDependencies) as info:
        define(
            {
                "name": "ghost",
                "steps": [
                    {"name": "a", "tool": "nope", "output_dataset": "nothing"},
                    {"name": "b", "tool": "collector", "input_dataset": "observations", "output_dataset": "void"},
                ],
            }
        )
    assert info.value.missing_tools == ["nope"]
    assert info.value.missing_datasets == ["nothing", "void"]
    assert instance.store.find_pipeline("ghost") is None
    assert "ghost" not in instance.catalog.pipelines()


def test_init_registers_the_definition_in_the_federation(instance, define):
    define(TWO_STEPS)
    registered = instance.catalog.get_pipeline("two")
    assert registered["name"] == "two"
    assert [s["name"] for s in registered["steps"]] == ["collect", "analyse"]


def test_short_form_is_a_one_step_pipeline():
    p = PipelineIn.model_validate({"tool": "collector", "dataset": "observations"})
    assert p.name == "collector-observations"
    assert p.steps[0].tool == "collector" and p.steps[0].output_dataset == "observations"


def test_no_overlapping_runs(instance, define, executor):
    gate = threading.Event()

    def slow(spec, on_log):
        gate.wait(10)
        (spec.output_dir / "x").write_text("x")
        return 0

    executor.tools["img/slow"] = slow
    from mao.models import ToolIn

    instance.catalog.add_tool(ToolIn(name="slow", image="img/slow"))
    define({"name": "slowpoke", "steps": [{"name": "s", "tool": "slow", "output_dataset": "observations"}]})
    run_id = instance.runner.start("slowpoke")
    with pytest.raises(Conflict):
        instance.runner.start("slowpoke")
    gate.set()
    instance.runner.wait(run_id, timeout=30)
    assert instance.store.get_run(run_id).status == "succeeded"


def test_cancel_kills_the_step(instance, define, executor):
    from mao.models import ToolIn

    executor.tools["img/sleep"] = lambda spec, on_log: (time.sleep(5), 0)[1]
    instance.catalog.add_tool(ToolIn(name="sleeper", image="img/sleep"))
    define({"name": "nap", "steps": [{"name": "s", "tool": "sleeper", "output_dataset": "observations"}]})
    run_id = instance.runner.start("nap")
    wait_for(lambda: instance.store.get_run(run_id).steps[0].status == "running", 5, "the step to run")
    instance.runner.cancel(run_id)
    instance.runner.wait(run_id, timeout=10)
    run = instance.store.get_run(run_id)
    assert run.status == "cancelled"
    assert run.steps[0].status == "cancelled"


def test_a_run_stopped_by_the_orchestrator_stopping_is_interrupted(instance, define, executor):
    from mao.models import ToolIn

    executor.tools["img/sleep"] = lambda spec, on_log: (time.sleep(5), 0)[1]
    instance.catalog.add_tool(ToolIn(name="sleeper", image="img/sleep"))
    define({"name": "nap", "steps": [{"name": "s", "tool": "sleeper", "output_dataset": "observations"}]})
    run_id = instance.runner.start("nap")
    wait_for(lambda: instance.store.get_run(run_id).steps[0].status == "running", 5, "the step to run")
    instance.runner.shutdown(wait=True)
    run = instance.store.get_run(run_id)
    assert run.status == "interrupted"
    assert "orchestrator stopped" in run.error


def test_private_variables_are_injected_and_masked(instance, define, executor):
    define(
        {
            "name": "secret",
            "private_variables": {"API_TOKEN": "s3cr3t-value"},
            "steps": [
                {
                    "name": "s",
                    "tool": "secretive",
                    "output_dataset": "observations",
                    "env": {"TOKEN": "{{ API_TOKEN }}"},
                }
            ],
        }
    )
    run_id = instance.runner.run_sync("secret")
    assert instance.store.get_run(run_id).status == "succeeded"
    assert executor.calls[-1].env["TOKEN"] == "s3cr3t-value"
    lines = [line.line for line in instance.store.logs(run_id)]
    assert "token is ***" in lines
    assert not any("s3cr3t-value" in line for line in lines)
    assert "s3cr3t-value" not in repr(instance.catalog.get_pipeline("secret"))
    assert "s3cr3t-value" not in repr(instance.store.get_pipeline("secret").steps)


def test_missing_private_variable_fails_with_its_name(instance, define):
    define(
        {
            "name": "nosecret",
            "steps": [
                {
                    "name": "s",
                    "tool": "secretive",
                    "output_dataset": "observations",
                    "env": {"TOKEN": "{{ API_TOKEN }}"},
                }
            ],
        }
    )
    run = instance.store.get_run(instance.runner.run_sync("nosecret"))
    assert run.status == "failed"
    assert "API_TOKEN" in run.steps[0].error


def test_render_env():
    env, secrets = render_env({"A": "plain", "B": "{{ X }}", "C": "{{Y}}"}, {"X": "1", "Y": "2"})
    assert env == {"A": "plain", "B": "1", "C": "2"} and secrets == ["1", "2"]
    with pytest.raises(InvalidInput, match="Z"):
        render_env({"A": "{{ Z }}"}, {})


def test_push_failure_keeps_the_commit_for_the_next_run(instance, define, remotes, tmp_path):
    define({"name": "one", "steps": [{"name": "collect", "tool": "collector", "output_dataset": "observations"}]})
    good = remotes["observations"]
    moved = tmp_path / "moved.git"
    first_ok = instance.runner.run_sync("one")
    assert instance.store.get_run(first_ok).status == "succeeded"

    good.rename(moved)  # the remote becomes unreachable
    failed_id = instance.runner.run_sync("one")
    failed = instance.store.get_run(failed_id)
    assert failed.status == "failed"
    assert failed.steps[0].pushed is False
    assert "next run" in failed.steps[0].error
    unpushed = failed.steps[0].output_commit
    assert unpushed

    moved.rename(good)  # reachable again
    third = instance.store.get_run(instance.runner.run_sync("one"))
    assert third.status == "succeeded", third.error
    history = git(good, "log", "--format=%H", "collect-node-a").split()
    assert unpushed in history
    assert git(good, "show", "ground-truth:observations.csv").count("\n") == 3


def test_a_concurrent_change_elsewhere_never_stops_the_run(instance, define, remotes, executor, tmp_path):
    define({"name": "one", "steps": [{"name": "collect", "tool": "collector", "output_dataset": "observations"}]})
    assert instance.store.get_run(instance.runner.run_sync("one")).status == "succeeded"
    import subprocess

    from runkit import GIT_ID

    collect = executor.tools["img/collect"]

    def collect_while_another_writes(spec, on_log) -> int:
        # another instance changes the same lines of ground-truth while this step runs
        work = tmp_path / "other"
        subprocess.run(
            ["git", "clone", "-q", "-b", "ground-truth", str(remotes["observations"]), str(work)], check=True
        )
        (work / "observations.csv").write_text("rewritten elsewhere\n")
        subprocess.run(["git", "-C", str(work), *GIT_ID, "commit", "-qam", "other"], check=True)
        subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "ground-truth"], check=True)
        return collect(spec, on_log)

    executor.tools["img/collect"] = collect_while_another_writes
    run = instance.store.get_run(instance.runner.run_sync("one"))
    assert run.status == "succeeded", run.error
    step = run.steps[0]
    gt = remotes["observations"]
    # the newest change (this step's) is ground-truth's; the other instance's stays in its history
    assert git(gt, "merge-base", "--is-ancestor", step.output_commit, "ground-truth") == ""
    parents = git(gt, "rev-list", "--parents", "-n", "1", step.merge_commit).split()
    other_commit = parents[1]
    assert git(gt, "show", f"{other_commit}:observations.csv") == "rewritten elsewhere\n"
    assert "Mao-Superseded: observations.csv" in git(gt, "show", "-s", "--format=%B", step.merge_commit)
    assert git(gt, "show", "ground-truth:observations.csv") == git(gt, "show", f"{step.output_commit}:observations.csv")


def test_crash_recovery_marks_interrupted(instance, define):
    define(TWO_STEPS)
    run = instance.store.create_run("two", instance.store.get_pipeline("two").steps)
    instance.store.update_run(run.id, status="running")
    assert instance.recovery.recover() == [run.id]
    again = instance.store.get_run(run.id)
    assert again.status == "interrupted"
    assert {s.status for s in again.steps} == {"interrupted"} or {s.status for s in again.steps} == {"cancelled"}
    # the pipeline can run again
    assert instance.store.get_run(instance.runner.run_sync("two")).status == "succeeded"
