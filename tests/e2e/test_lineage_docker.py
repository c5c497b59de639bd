"""OpenLineage events of a run on the real Docker Engine, received by a real HTTP server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e_kit import bare_repo, git
from lineage_kit import Receiver, valid
from waiting import wait_for

from mao.config import Settings
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn

pytestmark = pytest.mark.docker


def test_a_container_run_sends_start_and_complete_naming_its_commits(tmp_path: Path, docker_host: str):
    image = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
    receiver = Receiver()
    remote = bare_repo(tmp_path / "out.git")
    settings = Settings(
        instance_name="dock-l",
        data_dir=tmp_path / "data",
        docker_host=docker_host,
        pull_policy="never",
        lineage="http",
        lineage_url=receiver.url,
    )
    inst = Instance(settings)
    inst.setup()
    try:
        inst.catalog.add_tool(ToolIn(name="writer", image=image))
        inst.catalog.add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(remote))))
        step = {
            "name": "write",
            "tool": "writer",
            "output_dataset": "out",
            "cmd": ["sh", "-c", "date > /usr/src/app/data/now.txt"],
        }
        inst.pipelines.init(PipelineIn.model_validate({"name": "lin", "steps": [step]}))
        run = inst.store.get_run(inst.runner.run_sync("lin"))
        assert run.status == "succeeded", run.error
        wait_for(lambda: len(receiver.events) >= 4, 30, "START and COMPLETE of the run and its step")
    finally:
        inst.close()
        receiver.close()
    for event in receiver.events:
        valid(event)
    (row,) = run.steps
    assert [e["eventType"] for e in receiver.of("lin")] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in receiver.of("lin.write")] == ["START", "COMPLETE"]
    [output] = receiver.of("lin.write")[1]["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(remote))
    assert output["facets"]["maoGit"]["commit"] == row.output_commit
    assert (
        output["facets"]["maoGit"]["mergeCommit"]
        == row.merge_commit
        == git(remote, "rev-parse", "ground-truth").strip()
    )
