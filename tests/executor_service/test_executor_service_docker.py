"""The executor service on the real engine: a `maoctl executor serve` process, and an
orchestrator Instance that runs its pipelines through it (``executor_url``).

- ``MAO_TEST_DOCKER_HOST``: the Docker Engine the service runs containers on.
- ``MAO_TEST_IMAGE``: a local busybox image (default ``mao/busybox:local``), never pulled.
- ``MAO_TEST_REQUIRE_SERVICES=1``: a missing engine or image fails instead of skipping.

The service and the orchestrator run on this host, so they see the same dataset paths.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import httpx
import pytest
from waiting import SERVE_START, wait_for

import docker
from mao.config import Settings
from mao.executor.remote import RemoteExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn

pytestmark = pytest.mark.docker

INSTANCE = f"svc-{uuid.uuid4().hex[:8]}"
"""Of its own, so that its containers are told apart from anyone else's on the engine."""
TOKEN = "executor-test-token"


def _missing(reason: str) -> None:
    if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _containers(client: docker.DockerClient, run_id: int) -> list:
    return client.containers.list(all=True, filters={"label": [f"mao.run_id={run_id}", f"mao.instance={INSTANCE}"]})


@pytest.fixture(scope="module")
def docker_host() -> str:
    url = os.environ.get("MAO_TEST_DOCKER_HOST")
    if not url:
        _missing("MAO_TEST_DOCKER_HOST is not set")
    return url


@pytest.fixture(scope="module")
def docker_client(docker_host: str) -> Iterator[docker.DockerClient]:
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=30)
    except docker.errors.DockerException as exc:
        _missing(f"the Docker Engine at {docker_host} does not answer: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def image(docker_client: docker.DockerClient) -> str:
    name = os.environ.get("MAO_TEST_IMAGE") or "mao/busybox:local"
    try:
        docker_client.images.get(name)
    except docker.errors.ImageNotFound:
        _missing(f"image {name} is not on the engine (see scripts/services.sh)")
    return name


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, docker_host: str, image: str) -> Iterator[str]:
    """`maoctl executor serve` as a child process, with a token; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp("executor-service")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_")}
    env.update(
        {
            "MAO_DOCKER_HOST": docker_host,
            "MAO_INSTANCE_NAME": INSTANCE,
            "MAO_EXECUTOR_TOKEN": TOKEN,
            "MAO_DATA_DIR": str(workdir / "data"),
            # the orchestrators of these tests keep their datasets in their own tmp_path
            "MAO_EXECUTOR_DATA_ROOT": str(tmp_path_factory.getbasetemp()),
        }
    )
    log_path = workdir / "executor.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mao.cli.main", "executor", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def answered() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"maoctl executor serve exited with {proc.returncode}:\n{log_path.read_text()}")
            return httpx.get(url + "/health", timeout=1).status_code == 200

        wait_for(
            answered,
            SERVE_START,
            lambda: f"maoctl executor serve to answer /health:\n{log_path.read_text()}",
            0.1,
            ignore=(httpx.TransportError,),
        )
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def inst(tmp_path: Path, service: str, image: str) -> Iterator[Instance]:
    settings = Settings(
        instance_name=INSTANCE,
        data_dir=tmp_path / "data",
        executor_url=service,
        executor_token=TOKEN,
        push_retries=0,
        pull_policy="never",
    )
    instance = Instance(settings)
    instance.setup()
    instance.catalog.add_tool(ToolIn(name="box", image=image))
    yield instance
    instance.close()


def _pipeline(inst: Instance, tmp_path: Path, name: str, step: dict) -> Path:
    remote = tmp_path / f"{name}-out.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    inst.catalog.add_dataset(DatasetIn(name=f"{name}-out", body=DatasetBody(master=str(remote))))
    inst.pipelines.init(
        PipelineIn.model_validate(
            {"name": name, "steps": [{"name": "s", "tool": "box", "output_dataset": f"{name}-out", **step}]}
        ),
    )
    return remote


def test_health_and_token(service: str) -> None:
    assert httpx.get(service + "/health").json() == {"ok": True}  # the engine's details need the token
    body = httpx.get(service + "/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert body["ok"] is True and body["engine"] in ("docker", "podman")
    assert httpx.get(service + "/steps").status_code == 401
    remote = RemoteExecutor.from_url(service, token=TOKEN)
    try:
        assert remote.ping()["engine"] == body["engine"]
    finally:
        remote.close()


def test_pipeline_runs_through_the_service(inst: Instance, tmp_path: Path, docker_client) -> None:
    assert isinstance(inst.executor, RemoteExecutor)
    remote = _pipeline(
        inst,
        tmp_path,
        "collect",
        {
            "cmd": [
                "sh",
                "-c",
                'echo one; echo two >&2; echo "value $VALUE" > /usr/src/app/data/result.txt; echo three',
            ],
            "env": {"VALUE": "42"},
        },
    )
    run = inst.store.get_run(inst.runner.run_sync("collect"))
    assert run.status == "succeeded", run.error
    (step,) = run.steps
    assert step.exit_code == 0 and step.image_digest and step.image_digest.startswith("sha256:")
    assert _git(remote, "show", "ground-truth:result.txt") == "value 42\n"
    assert _git(remote, "rev-parse", f"s-{INSTANCE}").strip() == step.output_commit
    assert f"Mao-Image-Digest: {step.image_digest}" in _git(remote, "log", "-1", "--format=%B", step.output_commit)
    lines = [entry.line for entry in inst.store.logs(run.id)]
    tool_lines = [line for line in lines if line in ("one", "two", "three")]
    assert sorted(tool_lines) == ["one", "three", "two"]
    assert tool_lines.index("one") < tool_lines.index("three")
    assert _containers(docker_client, run.id) == []


def test_timeout_through_the_service(inst: Instance, tmp_path: Path, docker_client) -> None:
    remote = _pipeline(inst, tmp_path, "sleepy", {"cmd": "sleep 60", "timeout": 1})
    started = time.monotonic()
    run = inst.store.get_run(inst.runner.run_sync("sleepy"))
    assert run.status == "timed_out"
    assert run.steps[0].status == "timed_out"
    assert time.monotonic() - started < 30
    assert _containers(docker_client, run.id) == []
    assert _git(remote, "branch", "--list").strip() == ""
