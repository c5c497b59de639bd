"""Fixtures of the deployment tests: an engine with a bridge, the images, the SSH git server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_kit import Forwarder, bridge_gateway, build_images, engine_env, run


def _unavailable(reason: str, required: bool | None = None) -> None:
    if required is None:
        required = os.environ.get("MAO_TEST_REQUIRE_SERVICES") == "1"
    if required:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def deploy_env() -> dict[str, str]:
    """The engine of the deployment tests: MAO_TEST_DEPLOY_DOCKER_HOST, else MAO_TEST_DOCKER_HOST.

    It needs a bridge network (published ports, networks of their own); with
    ``--iptables=false`` the tests cut the steps' bridge off from forwarding themselves.
    """
    host = os.environ.get("MAO_TEST_DEPLOY_DOCKER_HOST") or os.environ.get("MAO_TEST_DOCKER_HOST")
    if not host or not host.startswith("unix://"):
        _unavailable("no Docker Engine for the deployment tests (MAO_TEST_DEPLOY_DOCKER_HOST)")
    if not (shutil.which("docker") and (shutil.which("docker-compose") or shutil.which("docker"))):
        _unavailable("the docker CLI and compose are needed")
    env = engine_env(host)
    if run(["docker", "version"], env=env, check=False).returncode != 0:
        _unavailable(f"the engine at {host} does not answer")
    try:
        bridge_gateway(env)
    except LookupError as exc:
        # the shared engine may run without a bridge: only an engine named for these tests must have one
        _unavailable(
            f"the engine at {host} cannot run a compose deployment: {exc}; "
            "set MAO_TEST_DEPLOY_DOCKER_HOST to an engine with a bridge network",
            required=bool(os.environ.get("MAO_TEST_DEPLOY_DOCKER_HOST")),
        )
    if not shutil.which("debootstrap"):
        _unavailable("debootstrap is needed to make the images' Debian base")
    return env


@pytest.fixture(scope="session")
def public_ip(deploy_env: dict[str, str]) -> str:
    """The instances' public IP: the host's address on the engine's bridge (containers reach it)."""
    return os.environ.get("MAO_TEST_DEPLOY_PUBLIC_IP") or bridge_gateway(deploy_env)


@pytest.fixture(scope="session")
def images(deploy_env: dict[str, str]) -> None:
    build_images(deploy_env)


@pytest.fixture(scope="session")
def ssh_git(public_ip: str) -> Iterator[tuple[Path, str, Path]]:
    """(key dir, URL base reachable from containers, repository root) of the test sshd."""
    keys, base, root = (
        os.environ.get(k) for k in ("MAO_TEST_SSH_KEY_DIR", "MAO_TEST_SSH_URL_BASE", "MAO_TEST_SSH_REPO_ROOT")
    )
    if not (keys and base and root):
        _unavailable("the SSH git server is not configured (MAO_TEST_SSH_*)")
    # ssh://root@127.0.0.1:2222/<root>: the containers reach it through a relay on the public IP
    authority, _, path = base[len("ssh://") :].partition("/")
    user, _, hostport = authority.rpartition("@")
    host, _, port = hostport.rpartition(":")
    relay = Forwarder(public_ip, (host, int(port)))
    yield Path(keys), f"ssh://{user}@{public_ip}:{relay.port}/{path}", Path(root)
    relay.close()
