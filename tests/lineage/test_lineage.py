"""OpenLineage events of runs and steps, received by a real HTTP server in the test (and
appended to a file), each checked against the OpenLineage RunEvent JSON schema."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lineage_kit import Receiver, valid
from waiting import wait_for

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.lineage import dataset_name
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry


def collect(spec, on_log) -> int:
    (spec.output_dir / "rows.csv").open("a").write(f"run {spec.run_id}\n")
    return 0


def analyse(spec, on_log) -> int:
    rows = (spec.input_dir / "rows.csv").read_text().splitlines()
    (spec.output_dir / "summary.txt").write_text(f"rows: {len(rows)}\n")
    return 0


def fail(spec, on_log) -> int:
    return 3


TWO_STEPS = {
    "name": "two",
    "steps": [
        {"name": "collect", "tool": "collector", "output_dataset": "observations"},
        {"name": "analyse", "tool": "analyser", "input_dataset": "observations", "output_dataset": "insights"},
    ],
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
    return path


def make_instance(tmp_path: Path, **lineage) -> Instance:
    settings = Settings(instance_name="node-l", data_dir=tmp_path / "data", push_retries=1, **lineage)
    executor = FakeExecutor({"img/collect": collect, "img/analyse": analyse, "img/fail": fail})
    inst = Instance(settings, registry=MemoryRegistry(), executor=executor)
    inst.setup()
    for tool, image in (("collector", "img/collect"), ("analyser", "img/analyse"), ("failer", "img/fail")):
        inst.catalog.add_tool(ToolIn(name=tool, image=image))
    for name in ("observations", "insights"):
        remote = bare(tmp_path / "remotes" / f"{name}.git")
        inst.catalog.add_dataset(DatasetIn(name=name, body=DatasetBody(master=str(remote))))
    return inst


def test_a_run_and_its_steps_start_and_complete_naming_their_commits(tmp_path: Path, receiver: Receiver):
    inst = make_instance(tmp_path, lineage="http", lineage_url=receiver.url, lineage_namespace="lab")
    try:
        inst.pipelines.init(PipelineIn.model_validate(TWO_STEPS))
        run = inst.store.get_run(inst.runner.run_sync("two"))
        assert run.status == "succeeded", run.error
        wait_for(lambda: len(receiver.events) >= 6, 30, "the lineage of one run and two steps")
    finally:
        inst.close()
    for event in receiver.events:
        valid(event)
    collect_row, analyse_row = run.steps
    obs = ("file", str(tmp_path / "remotes" / "observations.git"))
    ins = ("file", str(tmp_path / "remotes" / "insights.git"))

    start, complete = receiver.of("two")
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["job"]["namespace"] == "lab"
    assert start["producer"] == inst.settings.api_url
    outputs = {(d["namespace"], d["name"]): d["facets"] for d in complete["outputs"]}
    assert set(outputs) == {obs, ins}
    assert outputs[obs]["maoGit"]["commit"] == collect_row.output_commit
    assert outputs[obs]["maoGit"]["mergeCommit"] == collect_row.merge_commit
    assert outputs[obs]["version"]["datasetVersion"] == collect_row.merge_commit
    assert outputs[ins]["maoGit"]["commit"] == analyse_row.output_commit
    assert outputs[obs]["maoGit"]["_schemaURL"].startswith(inst.settings.api_url + "/docs-static/lineage/")
    # the run reads observations from its own first step: it is the run's output, not its input
    assert complete["inputs"] == []

    step_start, step_complete = receiver.of("two.analyse")
    assert (step_start["eventType"], step_complete["eventType"]) == ("START", "COMPLETE")
    parent = step_complete["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == complete["run"]["runId"]
    assert (parent["job"]["namespace"], parent["job"]["name"]) == ("lab", "two")
    [read] = step_complete["inputs"]
    assert (read["namespace"], read["name"]) == obs
    assert read["facets"]["maoGit"]["commit"] == analyse_row.input_commit == collect_row.merge_commit
    [wrote] = step_complete["outputs"]
    assert wrote["facets"]["maoGit"]["commit"] == analyse_row.output_commit
    assert step_complete["run"]["runId"] != receiver.of("two.collect")[1]["run"]["runId"]


def test_a_failing_tool_sends_fail_with_its_error(tmp_path: Path, receiver: Receiver):
    inst = make_instance(tmp_path, lineage="http", lineage_url=receiver.url)
    try:
        inst.pipelines.init(
            PipelineIn.model_validate(
                {"name": "bad", "steps": [{"name": "s", "tool": "failer", "output_dataset": "observations"}]}
            )
        )
        run = inst.store.get_run(inst.runner.run_sync("bad"))
        assert run.status == "failed"
        wait_for(lambda: len(receiver.events) >= 4, 30, "the lineage of the failed run")
    finally:
        inst.close()
    for event in receiver.events:
        valid(event)
    assert [e["eventType"] for e in receiver.of("bad")] == ["START", "FAIL"]
    assert [e["eventType"] for e in receiver.of("bad.s")] == ["START", "FAIL"]
    fail_event = receiver.of("bad")[1]
    assert fail_event["run"]["facets"]["errorMessage"]["message"] == "step s: exit code 3"
    assert fail_event["run"]["facets"]["errorMessage"]["_producer"] == inst.settings.api_url
    # no commit was made: the output is named without a commit
    assert all("maoGit" not in d.get("facets", {}) for d in fail_event["outputs"])


def test_events_appended_to_a_file_and_off_by_default(tmp_path: Path, monkeypatch):
    target = tmp_path / "lineage" / "events.jsonl"
    inst = make_instance(tmp_path, lineage="file", lineage_file=target)
    try:
        inst.pipelines.init(PipelineIn.model_validate(TWO_STEPS))
        assert inst.store.get_run(inst.runner.run_sync("two")).status == "succeeded"
    finally:
        inst.close()  # sends what is queued
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(e["job"]["name"], e["eventType"]) for e in events if e["job"]["name"] == "two"] == [
        ("two", "START"),
        ("two", "COMPLETE"),
    ]
    for event in events:
        valid(event)

    assert Settings(data_dir=tmp_path / "d2").lineage == "off"
    plain = Instance(Settings(instance_name="node-m", data_dir=tmp_path / "d2"), registry=MemoryRegistry())
    assert plain.lineage is None
    plain.close()


def test_the_api_key_is_sent_from_its_variable_and_a_missing_one_is_refused(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("LINEAGE_KEY", "k3y-value")
    inst = make_instance(tmp_path, lineage="http", lineage_url=receiver.url, lineage_api_key_env="LINEAGE_KEY")
    try:
        inst.pipelines.init(PipelineIn.model_validate(TWO_STEPS))
        inst.runner.run_sync("two")
        wait_for(lambda: len(receiver.events) >= 6, 30, "the lineage events")
    finally:
        inst.close()
    assert all(h.get("Authorization") == "Bearer k3y-value" for h in receiver.headers)
    assert all("k3y-value" not in json.dumps(e) for e in receiver.events)

    monkeypatch.delenv("LINEAGE_KEY")
    with pytest.raises(Exception, match="LINEAGE_KEY .* is not set"):
        Instance(
            Settings(
                instance_name="node-k",
                data_dir=tmp_path / "k",
                lineage="http",
                lineage_url=receiver.url,
                lineage_api_key_env="LINEAGE_KEY",
            ),
            registry=MemoryRegistry(),
        )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ssh://git@git.example.org:2222/srv/obs.git", ("ssh://git.example.org:2222", "srv/obs.git")),
        ("git@github.com:lab/obs.git", ("ssh://github.com", "lab/obs.git")),
        ("https://git.example.org/lab/obs.git", ("https://git.example.org", "lab/obs.git")),
        ("/srv/repos/obs.git", ("file", "/srv/repos/obs.git")),
        ("file:///srv/repos/obs.git", ("file", "/srv/repos/obs.git")),
    ],
)
def test_datasets_are_named_by_their_git_url(url, expected):
    assert dataset_name(url) == expected
