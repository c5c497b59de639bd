"""``scripts/demo`` keeps a previous demo's data and says what ``stop`` did."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo"


def _demo(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"MAO_RUN_DIR": str(run_dir), "MAO_API_PORT": "1"}
    return subprocess.run([str(DEMO), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_second_demo_refuses_to_delete_the_previous_one(tmp_path):
    kept = tmp_path / "demo" / "data" / "mao.db"
    kept.parent.mkdir(parents=True)
    kept.write_text("the user's pipelines and runs")
    result = _demo(tmp_path)
    assert result.returncode == 1
    assert "previous demo" in result.stderr and "scripts/demo --fresh" in result.stderr
    assert kept.read_text() == "the user's pipelines and runs"
    assert "Installing" not in result.stdout  # it stopped before doing anything


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
        reaper.join(timeout=15)
        assert sleeper.returncode is not None
        second = _demo(tmp_path, "stop")
        assert second.returncode == 0
        assert "no demo instance is running" in second.stdout
    finally:
        sleeper.kill()


def test_unknown_demo_argument_is_a_usage_error(tmp_path):
    result = _demo(tmp_path, "restart")
    assert result.returncode == 2 and "usage: scripts/demo" in result.stderr
