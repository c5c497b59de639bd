"""The generated compose file passes the compose tool's own validation (``config``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

CLUSTER = "mao-1=http://203.0.113.10:2380,new-node=http://198.51.100.7:2380"


def compose_command() -> list[str]:
    """``docker compose`` (plugin) or ``docker-compose``; skips (or fails, when services are required) without."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, stdin=subprocess.DEVNULL, timeout=60
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    binary = shutil.which("docker-compose")
    if binary:
        return [binary]
    reason = "neither 'docker compose' nor docker-compose is installed (Debian: apt-get install docker-compose)"
    if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def compose_config(install_dir: Path) -> dict:
    """``<compose> config`` run in the install directory, as a user would, so that .env is read."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("POSTGRES_PASSWORD", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME") and not k.startswith("MAO_")
    }
    proc = subprocess.run(
        [*compose_command(), "config"],
        cwd=install_dir,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr and "not set" not in proc.stderr, proc.stderr
    return yaml.safe_load(proc.stdout)


def _env_file(install_dir: Path) -> dict[str, str]:
    lines = (install_dir / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_standalone_compose_file_is_valid(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "mao-instance"
    result = maoctl(
        "instance",
        "install",
        "--non-interactive",
        "--skip-checks",
        "--standalone",
        "--install-dir",
        str(install_dir),
        "--instance-name",
        "node-1",
        "--public-ip",
        "198.51.100.7",
        "--git-email",
        "a@example.org",
        "--ssh-key-dir",
        str(key_dir),
    )
    assert result.code == 0, result.output
    config = compose_config(install_dir)
    secrets = _env_file(install_dir)
    services = config["services"]
    assert set(services) == {"orchestrator", "executor", "etcd", "postgres"}
    # .env is read: the secrets reach the services
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == secrets["POSTGRES_PASSWORD"]
    assert services["orchestrator"]["environment"]["MAO_API_TOKEN"] == secrets["MAO_API_TOKEN"]
    assert secrets["POSTGRES_PASSWORD"] in services["orchestrator"]["environment"]["MAO_STORE_URL"]
    assert services["etcd"]["environment"]["ETCD_INITIAL_CLUSTER_STATE"] == "new"


def test_join_compose_file_is_valid(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "mao-instance"
    result = maoctl(
        "instance",
        "install",
        "--non-interactive",
        "--skip-checks",
        "--federate",
        "--install-dir",
        str(install_dir),
        "--instance-name",
        "new-node",
        "--public-ip",
        "198.51.100.7",
        "--git-email",
        "a@example.org",
        "--ssh-key-dir",
        str(key_dir),
        "--etcd-initial-cluster",
        CLUSTER,
    )
    assert result.code == 0, result.output
    etcd = compose_config(install_dir)["services"]["etcd"]["environment"]
    assert etcd["ETCD_INITIAL_CLUSTER"] == CLUSTER
    assert etcd["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    assert etcd["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://198.51.100.7:2380"


def test_paths_with_dollar_signs_survive_interpolation(maoctl, home, key_dir, tmp_path) -> None:
    odd_keys = tmp_path / "keys$HOME"
    shutil.copytree(key_dir, odd_keys)
    install_dir = tmp_path / "inst$1"
    result = maoctl(
        "instance",
        "install",
        "--non-interactive",
        "--skip-checks",
        "--standalone",
        "--install-dir",
        str(install_dir),
        "--instance-name",
        "node-1",
        "--public-ip",
        "198.51.100.7",
        "--git-email",
        "a@example.org",
        "--ssh-key-dir",
        str(odd_keys),
    )
    assert result.code == 0, result.output
    orchestrator = compose_config(install_dir)["services"]["orchestrator"]
    # not interpolated ($HOME stays literal); `config` prints its output with $ escaped again
    unescape = lambda text: text.replace("$$", "$")  # noqa: E731
    sources = {unescape(m["target"]): unescape(m["source"]) for m in orchestrator["volumes"]}
    assert sources["/keys"] == str(odd_keys)
    assert sources[str(install_dir / "data")] == str(install_dir / "data")
    assert sources["/config/mao.yaml"] == str(install_dir / "mao.yaml")


def test_steps_get_no_host_networking_and_the_executor_no_api_token(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "mao-instance"
    result = maoctl(
        "instance",
        "install",
        "--non-interactive",
        "--skip-checks",
        "--standalone",
        "--install-dir",
        str(install_dir),
        "--instance-name",
        "node-1",
        "--public-ip",
        "198.51.100.7",
        "--git-email",
        "a@example.org",
        "--ssh-key-dir",
        str(key_dir),
    )
    assert result.code == 0, result.output
    settings = yaml.safe_load((install_dir / "mao.yaml").read_text())
    compose = yaml.safe_load((install_dir / "docker-compose.yaml").read_text())
    # steps run on the deployment's own steps network, which only the executor also joins
    steps_network = compose["networks"]["steps"]["name"]
    assert settings["network_mode"] == steps_network != "host"
    assert [n for n, s in compose["services"].items() if "steps" in (s.get("networks") or [])] == ["executor"]
    compose_text = (install_dir / "docker-compose.yaml").read_text()
    assert "host" not in [
        v
        for s in yaml.safe_load(compose_text)["services"].values()
        for k, v in s.items()
        if k in ("network_mode", "network")
    ]
    services = compose_config(install_dir)["services"]
    assert "MAO_API_TOKEN" not in services["executor"]["environment"]
    assert services["orchestrator"]["environment"]["MAO_API_TOKEN"] == _env_file(install_dir)["MAO_API_TOKEN"]
