"""Prerequisite checks against stand-in commands on PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from mao.installer.checks import check_dependencies, default_docker_socket


def stub(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


def test_everything_there(bin_dir: Path) -> None:
    stub(bin_dir, "docker", "exit 0")  # `docker version` and `docker compose version` answer
    stub(bin_dir, "git", 'echo "git version 2.39.2"')
    report = check_dependencies()
    assert report.ok, report.problems
    assert report.engine == "docker"
    assert report.compose == ["docker", "compose"]
    assert report.git


def test_engine_that_does_not_answer(bin_dir: Path) -> None:
    stub(
        bin_dir,
        "docker",
        '[ "$1" = compose ] && exit 0\n'
        'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" >&2; exit 1',
    )
    stub(bin_dir, "git", "exit 0")
    report = check_dependencies()
    assert [p.name for p in report.problems] == ["Docker (container engine)"]
    text = report.problems[0].describe()
    assert "'docker version' found no running engine (Cannot connect to the Docker daemon" in text
    assert "sudo systemctl start docker" in text
    assert "https://docs.docker.com/engine/install/" in text


def test_nothing_there(bin_dir: Path) -> None:
    report = check_dependencies()
    assert [p.name for p in report.problems] == ["Docker (container engine)", "Docker Compose", "Git"]
    described = "\n".join(p.describe() for p in report.problems)
    for text in (
        "sudo apt-get install docker.io",
        "https://docs.docker.com/engine/install/",
        "sudo apt-get install docker-compose",
        "https://docs.docker.com/compose/install/",
        "sudo apt-get install git",
        "needed because:",
    ):
        assert text in described


def test_podman_with_podman_compose(bin_dir: Path) -> None:
    stub(bin_dir, "podman", "exit 0")
    stub(bin_dir, "podman-compose", "exit 0")
    stub(bin_dir, "git", "exit 0")
    report = check_dependencies()
    assert report.ok and report.engine == "podman" and report.compose == ["podman-compose"]


def test_standalone_docker_compose_binary(bin_dir: Path) -> None:
    stub(bin_dir, "docker", '[ "$1" = compose ] && exit 1\nexit 0')  # no compose plugin
    stub(bin_dir, "docker-compose", "exit 0")
    stub(bin_dir, "git", "exit 0")
    report = check_dependencies()
    assert report.ok and report.compose == ["docker-compose"]


def test_missing_prerequisites_stop_a_non_interactive_install(maoctl, home, key_dir, tmp_path, bin_dir) -> None:
    install_dir = tmp_path / "inst"
    args = [
        "instance",
        "install",
        "--non-interactive",
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
    ]
    result = maoctl(*args)
    assert result.code != 0
    assert "missing prerequisites" in result.err and "--skip-checks" in result.err
    assert "sudo apt-get install docker.io" in result.err
    assert not install_dir.exists()

    assert maoctl(*args, "--skip-checks").code == 0
    assert (install_dir / "docker-compose.yaml").is_file()


def test_docker_socket_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///srv/engine.sock")
    assert default_docker_socket("docker") == "/srv/engine.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert default_docker_socket("docker") == "/var/run/docker.sock"
    monkeypatch.delenv("DOCKER_HOST")
    assert default_docker_socket(None) == "/var/run/docker.sock"
