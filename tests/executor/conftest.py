"""Fixtures for the executor tests: a real engine (Docker, and Podman when there is one).

- ``MAO_TEST_DOCKER_HOST``: the Docker Engine, e.g. ``unix:///.../docker.sock``.
- ``MAO_TEST_PODMAN_HOST``: Podman's Docker-compatible API (optional: skipped if unset).
- ``MAO_TEST_IMAGE``: a local busybox image (default ``mao/busybox:local``); it is never pulled.
- ``MAO_TEST_REQUIRE_SERVICES=1``: an unset or unreachable Docker Engine fails the tests
  instead of skipping them.

Every test gets a run id and an instance name of its own, so its containers are told
apart from anyone else's on the same engine, and they are removed afterwards.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests

import docker
from mao.executor.base import LABEL_INSTANCE, LABEL_RUN, StepSpec
from mao.executor.docker import DockerExecutor

ENGINE_VARS = {"docker": "MAO_TEST_DOCKER_HOST", "podman": "MAO_TEST_PODMAN_HOST"}


@dataclass
class Engine:
    name: str
    url: str
    client: docker.DockerClient


def _required() -> bool:
    return os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes")


def _missing(engine: str, reason: str) -> None:
    # Podman is optional everywhere; Docker is required when the services are.
    if engine == "docker" and _required():
        pytest.fail(f"{reason} (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def step_image() -> str:
    return os.environ.get("MAO_TEST_IMAGE") or "mao/busybox:local"


@pytest.fixture(scope="session", params=["docker", "podman"])
def engine(request: pytest.FixtureRequest, step_image: str) -> Iterator[Engine]:
    """Each engine that is configured and answers, with a client shared by its tests."""
    name = request.param
    var = ENGINE_VARS[name]
    url = os.environ.get(var)
    if not url:
        _missing(name, f"{var} is not set")
    try:
        client = docker.DockerClient(base_url=url, timeout=30)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        _missing(name, f"{name} at {url} does not answer: {exc}")
    try:
        try:
            client.images.get(step_image)
        except docker.errors.ImageNotFound:
            _missing(name, f"image {step_image} is not on {name} at {url} (see scripts/services.sh)")
        yield Engine(name, url, client)
    finally:
        client.close()


@pytest.fixture
def client(engine: Engine) -> docker.DockerClient:
    return engine.client


@pytest.fixture
def run_id() -> int:
    return random.randint(10**8, 2 * 10**9)


@pytest.fixture
def instance() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def executor(client: docker.DockerClient, instance: str) -> Iterator[DockerExecutor]:
    """A DockerExecutor on the engine that never removes another test's containers.

    Not closed here: it shares the session's client.
    """
    executor = DockerExecutor(client, poll_interval=0.05, instance=instance)
    try:
        yield executor
    finally:
        executor.remove_run_containers()


@pytest.fixture
def make_spec(tmp_path: Path, run_id: int, instance: str, step_image: str) -> Callable[..., StepSpec]:
    """``make_spec(command=..., **fields)``: a StepSpec for this test's run."""

    def make(**fields: Any) -> StepSpec:
        values: dict[str, Any] = {
            "run_id": run_id,
            "pipeline": "pipe",
            "step": "step",
            "image": step_image,
            "output_dir": tmp_path / "out",
            "instance": instance,
            "timeout": 30.0,
        }
        values.update(fields)
        return StepSpec(**values)

    return make


@pytest.fixture
def run_containers(client: docker.DockerClient, run_id: int, instance: str) -> Callable[[], list[Any]]:
    """Lists this test's containers on the engine (running or not)."""

    def containers() -> list[Any]:
        labels = [f"{LABEL_RUN}={run_id}", f"{LABEL_INSTANCE}={instance}"]
        return client.containers.list(all=True, filters={"label": labels})

    return containers
