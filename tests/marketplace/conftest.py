from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from catalogue_kit import write_catalogue
from waiting import SERVE_START, wait_for


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    """A valid private catalogue directory."""
    return write_catalogue(tmp_path / "catalogue")


@pytest.fixture
def serve_catalogue(free_port) -> Iterator[Callable[[Path], str]]:
    """Start ``maoctl marketplace serve DIR`` as a real process; returns its base URL."""
    procs: list[subprocess.Popen] = []

    def start(directory: Path) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k.startswith("MAO_TEST_")}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mao.cli.main",
                "marketplace",
                "serve",
                str(directory),
                "--port",
                str(port),
                "--quiet",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read()}")
            try:
                return httpx.get(url + "/tools.json", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, SERVE_START, "marketplace serve to answer")
        return url

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
