"""Pipelines on the real Docker Engine with real git remotes (file paths and SSH)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from e2e_kit import DEMO_PIPELINE, bare_repo, git

from mao.config import Settings
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn

pytestmark = pytest.mark.docker


@pytest.fixture
def inst(tmp_path: Path, docker_host: str, demo_image: str):
    settings = Settings(
        instance_name="dock-node",
        data_dir=tmp_path / "data",
        docker_host=docker_host,
        push_retries=0,
        pull_policy="never",
    )
    instance = Instance(settings)
    instance.setup()
    instance.catalog.add_tool(ToolIn(name="demo", image=demo_image))
    instance.catalog.add_tool(ToolIn(name="ghost", image="mao/does-not-exist:1"))
    yield instance
    instance.close()


def dataset(inst: Instance, name: str, url: str) -> None:
    inst.catalog.add_dataset(DatasetIn(name=name, body=DatasetBody(master=url)))


def define(inst: Instance, body: dict) -> None:
    inst.pipelines.init(PipelineIn.model_validate(body))


def run(inst: Instance, name: str):
    return inst.store.get_run(inst.runner.run_sync(name))


def test_multi_step_pipeline_with_input_and_provenance(inst, tmp_path):
    obs, ins = bare_repo(tmp_path / "obs.git"), bare_repo(tmp_path / "ins.git")
    dataset(inst, "observations", str(obs))
    dataset(inst, "insights", f"file://{ins}")
    define(inst, DEMO_PIPELINE)
    first = run(inst, "demo")
    assert first.status == "succeeded", first.error
    second = run(inst, "demo")
    assert second.status == "succeeded", second.error
    collect, analyse = second.steps
    assert analyse.input_commit == collect.merge_commit
    assert git(ins, "show", "ground-truth:summary.txt").startswith("observations: 2\n")
    body = git(ins, "log", "-1", "--format=%B", analyse.output_commit)
    assert f"Mao-Input-Commit: {collect.merge_commit}" in body
    assert f"Mao-Run: {second.id}" in body
    assert f"Mao-Image-Digest: {analyse.image_digest}" in body
    assert analyse.image_digest.startswith("sha256:")
    # output files belong to the instance's user
    wt = inst.settings.datasets_dir / "observations" / "worktrees" / "collect-dock-node" / "observations.csv"
    assert wt.stat().st_uid == os.getuid()


def test_failing_tool(inst, tmp_path):
    dataset(inst, "out", str(bare_repo(tmp_path / "out.git")))
    define(
        inst,
        {
            "name": "f",
            "steps": [
                {"name": "s", "tool": "demo", "output_dataset": "out", "cmd": "sh /usr/src/app/tool.sh nonsense"}
            ],
        },
    )
    r = run(inst, "f")
    assert r.status == "failed"
    assert r.steps[0].exit_code == 2
    assert any("unknown mode nonsense" in line.line for line in inst.store.logs(r.id))
    assert git(tmp_path / "out.git", "branch", "--list").strip() == ""


def test_tool_that_times_out(inst, tmp_path, docker_client):
    dataset(inst, "out", str(bare_repo(tmp_path / "out.git")))
    define(
        inst,
        {
            "name": "t",
            "steps": [{"name": "s", "tool": "demo", "output_dataset": "out", "cmd": "sleep 60", "timeout": 1}],
        },
    )
    r = run(inst, "t")
    assert r.status == "timed_out"
    assert r.steps[0].status == "timed_out"
    mine = [f"mao.run_id={r.id}", f"mao.instance={inst.name}"]  # the engine may be shared
    assert docker_client.containers.list(all=True, filters={"label": mine}) == []


def test_missing_image(inst, tmp_path):
    dataset(inst, "out", str(bare_repo(tmp_path / "out.git")))
    define(inst, {"name": "m", "steps": [{"name": "s", "tool": "ghost", "output_dataset": "out"}]})
    r = run(inst, "m")
    assert r.status == "failed"
    assert "mao/does-not-exist:1" in r.steps[0].error


def _ssh_env():
    keys, base, root = (
        os.environ.get(k) for k in ("MAO_TEST_SSH_KEY_DIR", "MAO_TEST_SSH_URL_BASE", "MAO_TEST_SSH_REPO_ROOT")
    )
    if not (keys and base and root):
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("the SSH git server is not configured (MAO_TEST_SSH_*)")
        pytest.skip("no SSH git server configured")
    return Path(keys), base, Path(root)


@pytest.mark.ssh
def test_pipeline_over_ssh_remote(tmp_path, docker_host, demo_image):
    keys, base, root = _ssh_env()
    name = f"e2e-{uuid.uuid4().hex[:8]}.git"
    remote = bare_repo(root / name)
    try:
        settings = Settings(
            instance_name="ssh-node",
            data_dir=tmp_path / "data",
            docker_host=docker_host,
            ssh_key_dir=keys,
            pull_policy="never",
        )
        inst = Instance(settings)
        inst.setup()
        try:
            inst.catalog.add_tool(ToolIn(name="demo", image=demo_image))
            dataset(inst, "remote-obs", f"{base}/{name}")
            define(inst, {"name": "s", "steps": [{"name": "collect", "tool": "demo", "output_dataset": "remote-obs"}]})
            r = run(inst, "s")
            assert r.status == "succeeded", r.error
            assert git(remote, "rev-parse", "collect-ssh-node").strip() == r.steps[0].output_commit
            assert "observations.csv" in git(remote, "ls-tree", "--name-only", "ground-truth")
        finally:
            inst.close()
    finally:
        subprocess.run(["rm", "-rf", str(remote)], check=False)
