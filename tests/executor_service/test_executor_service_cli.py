"""``maoctl executor serve``: its refusals, and how it builds the service from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn

from mao.cli.main import main
from mao.executor.docker import DockerExecutor
from mao.executor.fake import FakeExecutor


@pytest.fixture
def maoctl(capsys: pytest.CaptureFixture[str]):
    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stands in for the engine and uvicorn: records what the command would run."""
    seen: dict[str, Any] = {}
    fake = FakeExecutor()

    def from_url(base_url: str | None, **kw: Any) -> FakeExecutor:
        seen["docker_host"], seen["executor_kw"] = base_url, kw
        return fake

    def run(app: Any, **kw: Any) -> None:
        seen["app"], seen["uvicorn_kw"] = app, kw

    monkeypatch.setattr(DockerExecutor, "from_url", staticmethod(from_url))
    monkeypatch.setattr(uvicorn, "run", run)
    seen["executor"] = fake
    return seen


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_non_loopback_without_token_is_refused(maoctl, launched, host: str) -> None:
    code, output = maoctl("executor", "serve", "--host", host)
    assert code == 1
    assert f"refusing to expose the executor service on {host} without a token" in output
    assert "app" not in launched and "executor_kw" not in launched


def test_bad_owner_is_refused(maoctl, launched) -> None:
    code, output = maoctl("executor", "serve", "--owner", "root")
    assert code == 1 and "invalid --owner 'root'" in output


def test_serve_builds_the_docker_executor_from_the_settings(
    maoctl, launched, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "mao.yaml"
    config.write_text(
        "instance_name: node-b\ndocker_host: unix:///var/run/other.sock\nallow_docker_socket: true\n"
        "network_mode: none\napi_token: tok\n"
    )
    code, output = maoctl("executor", "serve", "--config", str(config), "--host", "0.0.0.0", "--port", "9099",
                          "--owner", "1000:1001")
    assert code == 0, output
    assert launched["docker_host"] == "unix:///var/run/other.sock"
    assert launched["executor_kw"] == {"allow_docker_socket": True, "network_mode": "none", "instance": "node-b",
                                       "owner": (1000, 1001)}
    assert launched["uvicorn_kw"]["host"] == "0.0.0.0" and launched["uvicorn_kw"]["port"] == 9099
    assert launched["executor"].closed  # closed when the server stops


def test_defaults_and_environment(maoctl, launched, monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = maoctl("executor", "serve")
    assert code == 0, output
    assert launched["uvicorn_kw"]["host"] == "127.0.0.1" and launched["uvicorn_kw"]["port"] == 8081
    assert launched["executor_kw"]["owner"] is None
    monkeypatch.setenv("MAO_EXECUTOR_PORT", "9100")
    monkeypatch.setenv("MAO_DOCKER_HOST", "tcp://127.0.0.1:2375")
    code, output = maoctl("executor", "serve")
    assert code == 0, output
    assert launched["uvicorn_kw"]["port"] == 9100 and launched["docker_host"] == "tcp://127.0.0.1:2375"
