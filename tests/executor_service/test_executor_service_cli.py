"""``maoctl executor serve``: its refusals, and how it builds the service from the settings."""

from __future__ import annotations

import stat
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


@pytest.fixture(autouse=True)
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("MAO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _status(app: Any, path: str, token: str | None = None, **kw: Any) -> int:
    from fastapi.testclient import TestClient

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with TestClient(app) as client:
        return client.request(kw.pop("method", "GET"), path, headers=headers, **kw).status_code


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::"])
def test_without_a_token_one_is_generated_and_required(maoctl, launched, data_dir: Path, host: str) -> None:
    code, output = maoctl("executor", "serve", "--host", host)
    assert code == 0, output
    token_file = data_dir / "executor-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32 and token not in output
    app = launched["app"]
    assert _status(app, "/steps") == 401
    assert _status(app, "/steps", "wrong") == 401
    assert _status(app, "/steps", token) == 200
    # a second start keeps the same token (the orchestrator has read it)
    assert maoctl("executor", "serve", "--host", host)[0] == 0
    assert token_file.read_text().strip() == token


@pytest.mark.parametrize("value", [" ", "short-token"])
def test_weak_token_on_a_public_bind_is_refused(maoctl, launched, monkeypatch, value: str) -> None:
    monkeypatch.setenv("MAO_EXECUTOR_TOKEN", value)
    code, output = maoctl("executor", "serve", "--host", "0.0.0.0")
    assert code == 1
    assert "MAO_EXECUTOR_TOKEN" in output and "app" not in launched


def test_blank_token_is_refused_on_loopback_too(maoctl, launched, monkeypatch) -> None:
    monkeypatch.setenv("MAO_EXECUTOR_TOKEN", "   ")
    code, output = maoctl("executor", "serve")
    assert code == 1 and "MAO_EXECUTOR_TOKEN" in output and "blank" in output and "app" not in launched


def test_mounts_only_under_the_data_root(maoctl, launched, data_dir: Path, tmp_path: Path) -> None:
    code, output = maoctl("executor", "serve")
    assert code == 0, output
    token = (data_dir / "executor-token").read_text().strip()
    body = {"run_id": 1, "pipeline": "p", "step": "s", "image": "img", "output_dir": "/root/.ssh"}
    assert _status(launched["app"], "/steps", token, method="POST", json=body) == 400
    inside = data_dir / "datasets" / "d"
    inside.mkdir(parents=True)
    assert _status(launched["app"], "/steps", token, method="POST", json=body | {"output_dir": str(inside)}) == 202

    other = tmp_path / "elsewhere"
    other.mkdir()
    code, output = maoctl("executor", "serve", "--data-root", str(other))
    assert code == 0, output
    assert _status(launched["app"], "/steps", token, method="POST", json=body | {"output_dir": str(inside)}) == 400


def test_bad_owner_is_refused(maoctl, launched) -> None:
    code, output = maoctl("executor", "serve", "--owner", "root")
    assert code == 1 and "invalid --owner 'root'" in output


def test_serve_builds_the_docker_executor_from_the_settings(
    maoctl, launched, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "mao.yaml"
    config.write_text(
        "instance_name: node-b\ndocker_host: unix:///var/run/other.sock\nallow_docker_socket: true\n"
        "network_mode: none\nexecutor_token: a-long-enough-executor-token\n"
    )
    code, output = maoctl(
        "executor", "serve", "--config", str(config), "--host", "0.0.0.0", "--port", "9099", "--owner", "1000:1001"
    )
    assert code == 0, output
    assert launched["docker_host"] == "unix:///var/run/other.sock"
    assert launched["executor_kw"] == {
        "allow_docker_socket": True,
        "network_mode": "none",
        "instance": "node-b",
        "owner": (1000, 1001),
    }
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
