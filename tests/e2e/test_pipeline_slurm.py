"""One two-step pipeline (an input dataset and an output dataset) run on the local engine, on a
one-node Slurm whose node shares the instance's disk, and on the same Slurm with the data
travelling by commit through the instance's API: the same ground-truth content and provenance,
the engine and the node named. A failing tool, a timeout and a cancel on Slurm each end the run
and leave no job or container."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import DEMO_IMAGE, DEMO_PIPELINE, bare_repo, free_port, git, required
from served_kit import Served
from waiting import wait_for

import docker
from mao.config import Settings
from mao.executor.slurm import SlurmCommands
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("slurm")]


@pytest.fixture(scope="module")
def slurm_conf() -> str:
    conf = os.environ.get("MAO_TEST_SLURM_CONF")
    if not conf:
        if required():
            pytest.fail("MAO_TEST_SLURM_CONF is not set (scripts/services.sh up)")
        pytest.skip("MAO_TEST_SLURM_CONF is not set")
    return conf


@contextmanager
def _instance(tmp_path: Path, name: str, **settings: Any) -> Iterator[Instance]:
    """An instance whose API is served on loopback (the exchange's routes for the nodes)."""
    port = free_port()
    inst = Instance(
        Settings(
            instance_name=name,
            data_dir=tmp_path / name,
            push_retries=0,
            pull_policy="never",
            exchange_url=f"http://127.0.0.1:{port}",
            **settings,
        ),
        registry=MemoryRegistry(),
    )
    try:
        with Served.api(instance=inst, host="127.0.0.1", port=port):
            yield inst
    finally:
        inst.close()


def _slurm(slurm_conf: str, docker_host: str, data: str) -> dict[str, Any]:
    return {
        "executor": "slurm",
        "slurm_conf": slurm_conf,
        "slurm_container_cli": f"docker -H {docker_host}",
        "slurm_data": data,
    }


def _run_twice(tmp_path: Path, name: str, **settings: Any) -> tuple[Path, Path, list]:
    obs, ins = bare_repo(tmp_path / f"{name}-obs.git"), bare_repo(tmp_path / f"{name}-ins.git")
    with _instance(tmp_path, name, **settings) as inst:
        inst.catalog.add_tool(ToolIn(name="demo", image=DEMO_IMAGE))
        inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(obs))))
        inst.catalog.add_dataset(DatasetIn(name="insights", body=DatasetBody(master=str(ins))))
        inst.pipelines.init(PipelineIn.model_validate(DEMO_PIPELINE))
        runs = [inst.store.get_run(inst.runner.run_sync("demo")) for _ in range(2)]
    for run in runs:
        assert run.status == "succeeded", run.error
    return obs, ins, runs


def _content(repo: Path) -> dict[str, str]:
    names = git(repo, "ls-tree", "-r", "--name-only", "ground-truth").split()
    return {name: git(repo, "show", f"ground-truth:{name}") for name in names}


def _trailers(repo: Path, commit: str) -> dict[str, str]:
    body = git(repo, "log", "-1", "--format=%B", commit)
    return dict(line.split(": ", 1) for line in body.splitlines() if line.startswith("Mao-"))


def test_the_same_pipeline_locally_on_slurm_shared_and_by_commit_agrees(
    tmp_path: Path, docker_host: str, demo_image: str, slurm_conf: str
) -> None:
    engines = {
        "local": _run_twice(tmp_path, "node-local", docker_host=docker_host),
        "shared": _run_twice(tmp_path, "node-shared", **_slurm(slurm_conf, docker_host, "shared")),
        "commit": _run_twice(tmp_path, "node-commit", **_slurm(slurm_conf, docker_host, "commit")),
    }
    local_obs, local_ins, _ = engines["local"]
    # the demo tool writes the time and a reading of its own: the same files, the same rows
    for how, (obs, ins, _) in engines.items():
        for repo, local_repo in ((obs, local_obs), (ins, local_ins)):
            files, local_files = _content(repo), _content(local_repo)
            assert files.keys() == local_files.keys(), how
            for name, text in files.items():
                assert len(text.splitlines()) == len(local_files[name].splitlines()), (how, name)
        assert _content(ins)["summary.txt"].startswith("observations: 2\n"), how

    local_trailers = _trailers(local_ins, engines["local"][2][-1].steps[1].output_commit)
    local_keys = set(local_trailers)
    for how, (obs, ins, runs) in engines.items():
        collect, analyse = runs[-1].steps
        assert analyse.input_commit == collect.merge_commit
        trailers = _trailers(ins, analyse.output_commit)
        assert trailers["Mao-Input-Commit"] == collect.merge_commit
        assert trailers["Mao-Step"] == "analyse" and trailers["Mao-Pipeline"] == "demo"
        if how == "local":
            assert trailers["Mao-Executor"] == "docker" and "Mao-Node" not in trailers
        else:
            assert trailers["Mao-Executor"] == "slurm" and trailers["Mao-Node"] == "localhost", how
            assert set(trailers) == local_keys | {"Mao-Node"}, how
            assert trailers["Mao-Image-Digest"] == local_trailers["Mao-Image-Digest"] == analyse.image_digest, how
            assert _trailers(obs, collect.output_commit)["Mao-Node"] == "localhost"


def _left(docker_host: str, slurm_conf: str, run_id: int, instance: str) -> list[str]:
    client = docker.DockerClient(base_url=docker_host)
    try:
        left = [c.name for c in client.containers.list(all=True, filters={"label": [f"mao.run_id={run_id}"]})]
    finally:
        client.close()
    jobs = SlurmCommands(Path(slurm_conf)).jobs(fresh=True).values()
    return left + [
        f"job {j['job_id']}"
        for j in jobs
        if str(j.get("comment", "")).startswith(f"mao:{instance}:{run_id}:")
        and j.get("job_state") in ("PENDING", "RUNNING")
    ]


@pytest.mark.parametrize("data", ["shared", "commit"])
def test_a_failing_tool_a_timeout_and_a_cancel_end_the_run_and_leave_nothing(
    tmp_path: Path, docker_host: str, demo_image: str, slurm_conf: str, data: str
) -> None:
    obs = bare_repo(tmp_path / "obs.git")
    name = f"node-{data}"
    with _instance(tmp_path, name, **_slurm(slurm_conf, docker_host, data)) as inst:
        inst.catalog.add_tool(ToolIn(name="demo", image=DEMO_IMAGE))
        inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(obs))))
        steps = {
            "bad": {"cmd": ["sh", "-c", "echo broken; exit 4"]},
            "slow": {"cmd": ["sh", "-c", "sleep 300"], "timeout": 3},
            "long": {"cmd": ["sh", "-c", "echo started; sleep 300"]},
            "refused": {"cmd": ["sh", "-c", "true"], "resources": {"cpus": 1, "partition": "nosuchpartition"}},
        }
        for pipeline, step in steps.items():
            body = {"name": f"s-{pipeline}", "tool": "demo", "output_dataset": "observations", **step}
            inst.pipelines.init(PipelineIn.model_validate({"name": pipeline, "steps": [body]}))

        failed = inst.store.get_run(inst.runner.run_sync("bad"))
        assert failed.status == "failed" and failed.steps[0].exit_code == 4, failed.error
        refused = inst.store.get_run(inst.runner.run_sync("refused"))  # the step's resources reach sbatch
        assert refused.status == "failed" and "not submitted" in (refused.error or ""), refused.error
        timed_out = inst.store.get_run(inst.runner.run_sync("slow"))
        assert timed_out.status == "timed_out", timed_out.error

        run_id = inst.runner.start("long")
        wait_for(
            lambda: any("started" in line.line for line in inst.store.logs(run_id)),
            timeout=60,
            message="the long step started on the node",
        )
        assert inst.runner.cancel(run_id)
        inst.runner.wait(run_id, timeout=90)
        cancelled = inst.store.get_run(run_id)
        assert cancelled.status == "cancelled", cancelled.error
        for run in (failed, timed_out, cancelled):
            wait_for(
                lambda run=run: _left(docker_host, slurm_conf, run.id, name) == [],
                timeout=30,
                message=f"no job or container of run {run.id} left",
            )
        assert git(obs, "branch", "--list", "ground-truth") == ""  # nothing delivered

        if data == "commit":  # a tree with a .git of its own is refused whole: nothing changes
            sneaky = (
                "mkdir -p /usr/src/app/data/.git/hooks && echo 'rm -rf /' > /usr/src/app/data/.git/hooks/post-commit"
            )
            body = {"name": "s-sneaky", "tool": "demo", "output_dataset": "observations", "cmd": ["sh", "-c", sneaky]}
            inst.pipelines.init(PipelineIn.model_validate({"name": "sneaky", "steps": [body]}))
            refused_tree = inst.store.get_run(inst.runner.run_sync("sneaky"))
            assert refused_tree.status == "failed" and "send the step's output back" in (refused_tree.error or ""), (
                refused_tree.error
            )
            logs = [line.line for line in inst.store.logs(refused_tree.id)]
            assert any("inside a .git" in line for line in logs), logs
            assert not list((tmp_path / name).rglob("post-commit"))
