"""The dashboard's live stream in a real ``maoctl serve``: an open run page does not keep
a stopping server waiting for the run."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from ui_kit import Served
from waiting import wait_for

import mao.ui.live as live

pytestmark = pytest.mark.docker


def test_a_stopping_server_waits_for_no_open_run_page(tmp_path: Path, docker_host: str):
    server = Served(tmp_path / "data", docker_host).start()
    try:
        server.api("POST", "/registry/tools", json={"name": "sleeper", "image": "mao/busybox:local"})
        server.api("POST", "/bare-repo/init", json={"name": "naps", "register": True})
        step = {
            "name": "nap",
            "tool": "sleeper",
            "output_dataset": "naps",
            "cmd": ["sh", "-c", "echo napping; sleep 300"],
        }
        server.api("POST", "/pipeline/init", json={"name": "long", "steps": [step]})
        run_id = server.api("POST", "/pipeline/run", json={"name": "long"}).json()["run_id"]
        received: list[str] = []
        opened = threading.Event()

        def watch() -> None:
            try:
                with httpx.stream("GET", f"{server.url}/ui/runs/{run_id}/events", timeout=120) as response:
                    for line in response.iter_lines():
                        received.append(line)
                        opened.set()
            except httpx.HTTPError:
                pass

        reader = threading.Thread(target=watch, daemon=True)
        reader.start()
        assert opened.wait(30), "the event stream did not open"
        wait_for(lambda: server.api("GET", f"/runs/{run_id}").json()["status"] == "running", 60, "the run to start")
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(live.STREAM_S + 15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"maoctl serve still running {live.STREAM_S + 15:.0f} s after SIGTERM, with a run page open")
        assert code in (0, -signal.SIGTERM), server.log()  # uvicorn re-raises the signal it handled
        print(f"maoctl serve stopped {time.monotonic() - started:.1f} s after SIGTERM, with a run page open")
        assert "event: run" in received
    finally:
        server.stop()
