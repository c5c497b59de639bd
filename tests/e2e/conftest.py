"""End-to-end fixtures: the real Docker Engine, the demo tool image, and `maoctl serve` processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_kit import DEMO_IMAGE, ROOT, Server, required

import docker


@pytest.fixture(scope="session")
def docker_host() -> str:
    url = os.environ.get("MAO_TEST_DOCKER_HOST")
    if not url:
        if required():
            pytest.fail("MAO_TEST_DOCKER_HOST is not set (MAO_TEST_REQUIRE_SERVICES=1)")
        pytest.skip("MAO_TEST_DOCKER_HOST is not set")
    return url


@pytest.fixture(scope="session")
def docker_client(docker_host: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=docker_host)
    yield client
    client.close()


@pytest.fixture(scope="session")
def demo_image(docker_client: docker.DockerClient) -> str:
    """The demo tool, built FROM the local busybox image (no registry involved)."""
    base = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
    docker_client.images.build(
        path=str(ROOT / "src/mao/demo"), tag=DEMO_IMAGE, buildargs={"BASE": base}, rm=True, network_mode="none"
    )
    return DEMO_IMAGE


@pytest.fixture
def server(tmp_path: Path, docker_host: str, demo_image: str) -> Iterator[Server]:
    srv = Server(tmp_path / "data", docker_host).start()
    yield srv
    srv.stop()
