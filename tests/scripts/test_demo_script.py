"""``scripts/demo``: a stopped demo starts again with its data kept, ``stop`` says what it
did, and the usage names every subcommand."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from waiting import SERVE_START, wait_for

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo"


def _demo(run_dir: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"MAO_RUN_DIR": str(run_dir), "MAO_API_PORT": "1"} | env
    return subprocess.run([str(DEMO), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_demo_stop_says_what_it_stopped_and_names_services_down(tmp_path):
    (tmp_path / "demo").mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    reaper = threading.Thread(target=sleeper.wait, daemon=True)  # no zombie for the script to wait on
    reaper.start()
    try:
        (tmp_path / "demo" / "serve.pid").write_text(str(sleeper.pid))
        (tmp_path / "docker.sock").touch()  # not a socket: no engine line
        first = _demo(tmp_path, "stop")
        assert first.returncode == 0
        assert f"demo instance stopped (pid {sleeper.pid}" in first.stdout
        assert "scripts/demo start" in first.stdout
        reaper.join(timeout=15)
        assert sleeper.returncode is not None
        second = _demo(tmp_path, "stop")
        assert second.returncode == 0
        assert "no demo instance is running" in second.stdout
    finally:
        sleeper.kill()


@pytest.mark.parametrize("argv", [("restart",), ("start", "now")])
def test_unknown_demo_argument_is_a_usage_error_naming_every_subcommand(tmp_path, argv):
    result = _demo(tmp_path, *argv)
    assert result.returncode == 2 and "usage: scripts/demo" in result.stderr
    for sub in ("start", "stop", "--fresh"):
        assert f"scripts/demo {sub}" in result.stderr
    assert not (tmp_path / "demo").exists()  # nothing was done


def test_help_is_the_usage_on_stdout(tmp_path):
    result = _demo(tmp_path, "--help")
    assert result.returncode == 0 and "scripts/demo start" in result.stdout


def _api(method: str, url: str, data_dir: Path, **kwargs) -> httpx.Response:
    """A request with the instance's token, if it made one."""
    token_file = data_dir / "api-token"
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"} if token_file.exists() else {}
    response = httpx.request(method, url, headers=headers, timeout=10, **kwargs)
    response.raise_for_status()
    return response


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.docker
@pytest.mark.slow
def test_a_stopped_demo_starts_again_with_its_data(tmp_path, free_port):
    docker_host = os.environ.get("MAO_TEST_DOCKER_HOST")
    if not docker_host:
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail("MAO_TEST_DOCKER_HOST is not set (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip("MAO_TEST_DOCKER_HOST is not set")
    port = str(free_port())
    url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "demo" / "data"
    data_dir.mkdir(parents=True)  # a demo's data, as `scripts/demo stop` leaves it
    env = {"MAO_API_PORT": port, "DOCKER_HOST": docker_host, "MAO_INSTANCE_NAME": "kept-demo"}
    try:
        started = _demo(tmp_path, "start", timeout=240, **env)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"export MAO_URL={url} DOCKER_HOST={docker_host}" in started.stdout
        assert f"{url}/ui" in started.stdout and "scripts/demo stop" in started.stdout
        assert _answers(url)
        _api("POST", f"{url}/registry/tools", data_dir, json={"name": "kept-tool", "image": "mao/busybox:local"})

        again = _demo(tmp_path, "start", **env)  # already running: said, and nothing else done
        assert again.returncode == 0 and "already running" in again.stdout
        assert f"export MAO_URL={url}" in again.stdout

        stopped = _demo(tmp_path, "stop", **env)
        assert stopped.returncode == 0 and "demo instance stopped" in stopped.stdout
        assert not _answers(url)

        # plain scripts/demo on a stopped demo: started again with what it held, from a
        # shell that has none of the settings (the engine and the name are the demo's own)
        bare = {"MAO_API_PORT": port, "DOCKER_HOST": ""}
        restarted = _demo(tmp_path, timeout=240, **bare)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert "data kept" in restarted.stdout
        assert f"export MAO_URL={url} DOCKER_HOST={docker_host}" in restarted.stdout
        wait_for(lambda: _answers(url), SERVE_START, "the restarted demo to answer")
        assert "kept-tool" in _api("GET", f"{url}/registry/tools", data_dir).json()
        assert _api("GET", f"{url}/federation/status", data_dir).json()["instance"] == "kept-demo"
    finally:
        _demo(tmp_path, "stop")
    assert not _answers(url)
