"""One two-step pipeline (an input dataset and an output dataset) run on the local engine and
on a one-node Docker Swarm: the same ground-truth content and provenance, the engine named."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_kit import DEMO_IMAGE, DEMO_PIPELINE, ROOT, bare_repo, git

import docker
from mao.config import Settings
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def swarm_demo_image(swarm_host: str) -> str:
    """The demo tool built on the swarm manager's engine, as on the local one."""
    import os

    client = docker.DockerClient(base_url=swarm_host)
    try:
        base = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
        client.images.build(
            path=str(ROOT / "src/mao/demo"), tag=DEMO_IMAGE, buildargs={"BASE": base}, rm=True, network_mode="none"
        )
    finally:
        client.close()
    return DEMO_IMAGE


def _run_twice(tmp_path: Path, name: str, **settings: str) -> tuple[Path, Path, list]:
    obs, ins = bare_repo(tmp_path / f"{name}-obs.git"), bare_repo(tmp_path / f"{name}-ins.git")
    inst = Instance(
        Settings(instance_name=name, data_dir=tmp_path / name, push_retries=0, pull_policy="never", **settings),
        registry=MemoryRegistry(),
    )
    inst.setup()
    try:
        inst.catalog.add_tool(ToolIn(name="demo", image=DEMO_IMAGE))
        inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(obs))))
        inst.catalog.add_dataset(DatasetIn(name="insights", body=DatasetBody(master=str(ins))))
        inst.pipelines.init(PipelineIn.model_validate(DEMO_PIPELINE))
        runs = [inst.store.get_run(inst.runner.run_sync("demo")) for _ in range(2)]
    finally:
        inst.close()
    for run in runs:
        assert run.status == "succeeded", run.error
    return obs, ins, runs


def _content(repo: Path) -> dict[str, str]:
    names = git(repo, "ls-tree", "-r", "--name-only", "ground-truth").split()
    return {name: git(repo, "show", f"ground-truth:{name}") for name in names}


def _trailers(repo: Path, commit: str) -> dict[str, str]:
    body = git(repo, "log", "-1", "--format=%B", commit)
    return dict(line.split(": ", 1) for line in body.splitlines() if line.startswith("Mao-"))


def test_the_same_pipeline_on_the_local_engine_and_on_the_swarm_agrees(
    tmp_path, docker_host, demo_image, swarm_host, swarm_demo_image
) -> None:
    local_obs, local_ins, local_runs = _run_twice(tmp_path, "node-local", docker_host=docker_host)
    swarm_obs, swarm_ins, swarm_runs = _run_twice(tmp_path, "node-swarm", executor="swarm", swarm_host=swarm_host)

    # the demo tool writes the time and a reading of its own: the same files, the same rows
    for swarm_repo, local_repo in ((swarm_obs, local_obs), (swarm_ins, local_ins)):
        swarm_files, local_files = _content(swarm_repo), _content(local_repo)
        assert swarm_files.keys() == local_files.keys()
        for name, text in swarm_files.items():
            assert len(text.splitlines()) == len(local_files[name].splitlines()), name
    assert _content(swarm_ins)["summary.txt"].startswith("observations: 2\n")
    assert _content(local_ins)["summary.txt"].startswith("observations: 2\n")

    for repo_obs, repo_ins, runs, engine in (
        (local_obs, local_ins, local_runs, "docker"),
        (swarm_obs, swarm_ins, swarm_runs, "swarm"),
    ):
        collect, analyse = runs[-1].steps
        assert analyse.input_commit == collect.merge_commit
        trailers = _trailers(repo_ins, analyse.output_commit)
        assert trailers["Mao-Executor"] == engine
        assert trailers["Mao-Input-Commit"] == collect.merge_commit
        assert trailers["Mao-Image-Digest"] == analyse.image_digest
        assert trailers["Mao-Step"] == "analyse" and trailers["Mao-Pipeline"] == "demo"
        assert _trailers(repo_obs, collect.output_commit)["Mao-Executor"] == engine


def test_a_failing_step_on_the_swarm_ends_the_run_and_leaves_no_service(tmp_path, swarm_host, swarm_demo_image) -> None:
    obs = bare_repo(tmp_path / "obs.git")
    inst = Instance(
        Settings(instance_name="node-swarm", data_dir=tmp_path / "d", executor="swarm", swarm_host=swarm_host),
        registry=MemoryRegistry(),
    )
    inst.setup()
    try:
        inst.catalog.add_tool(ToolIn(name="demo", image=DEMO_IMAGE))
        inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(obs))))
        step = {"name": "s", "tool": "demo", "output_dataset": "observations", "cmd": ["sh", "-c", "exit 4"]}
        inst.pipelines.init(PipelineIn.model_validate({"name": "bad", "steps": [step]}))
        run = inst.store.get_run(inst.runner.run_sync("bad"))
    finally:
        inst.close()
    assert run.status == "failed" and run.steps[0].exit_code == 4
    client = docker.DockerClient(base_url=swarm_host)
    try:
        labels = [f"mao.run_id={run.id}", "mao.instance=node-swarm"]
        assert client.services.list(filters={"label": labels}) == []
        assert client.containers.list(all=True, filters={"label": labels}) == []
    finally:
        client.close()
