"""`maoctl serve` refuses a busy port and a data directory another orchestrator serves:
a second orchestrator would take the first one's running runs for crashed ones."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx
from waiting import SERVE_START, wait_for


def _env(data_dir, port) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_")}
    return env | {"MAO_DATA_DIR": str(data_dir), "MAO_API_PORT": str(port)}


def test_second_orchestrator_on_the_same_data_dir_is_refused(tmp_path, free_port):
    first_port, second_port = free_port(), free_port()
    first = subprocess.Popen(
        [sys.executable, "-m", "mao.cli.main", "serve"],
        env=_env(tmp_path / "d", first_port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{first_port}/health", timeout=1).status_code == 200,
            SERVE_START,
            "the first orchestrator to answer /health",
            0.1,
            ignore=(httpx.TransportError,),
        )
        second = subprocess.run(
            [sys.executable, "-m", "mao.cli.main", "serve"],
            env=_env(tmp_path / "d", second_port),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "already serving the data directory" in second.stderr
        assert "Traceback" not in second.stderr
        assert httpx.get(f"http://127.0.0.1:{first_port}/health", timeout=5).status_code == 200
    finally:
        first.terminate()
        first.wait(20)


def test_busy_port_is_refused_before_anything_starts(tmp_path, free_port):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mao.cli.main", "serve"],
            env=_env(tmp_path / "d", port),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert not (tmp_path / "d" / "mao.db").exists()
