"""Helpers of the end-to-end tests: `maoctl serve` processes, bare remotes, git."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from waiting import SERVE_START, wait_for

ROOT = Path(__file__).resolve().parents[2]
DEMO_IMAGE = "mao/demo-tool:e2e"
DEMO_PIPELINE = {
    "name": "demo",
    "steps": [
        {
            "name": "collect",
            "tool": "demo",
            "output_dataset": "observations",
            "cmd": "sh /usr/src/app/tool.sh collect",
            "env": {"SOURCE": "unit"},
        },
        {
            "name": "analyse",
            "tool": "demo",
            "input_dataset": "observations",
            "output_dataset": "insights",
            "cmd": ["sh", "/usr/src/app/tool.sh", "analyse"],
        },
    ],
}
"""Two steps of the demo tool: rows collected into ``observations``, summed up into ``insights``."""


def required() -> bool:
    return os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
    return path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Server:
    """A `maoctl serve` child process on its own port and data directory."""

    data_dir: Path
    docker_host: str
    name: str = "e2e-node"
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        # MAO_LOCAL_REMOTE_ROOTS: the tests' bare remotes live in their tmp_path (tests/conftest.py)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k == "MAO_LOCAL_REMOTE_ROOTS"}
        env.update(
            {
                "MAO_DATA_DIR": str(self.data_dir),
                "MAO_API_PORT": str(self.port),
                "MAO_INSTANCE_NAME": self.name,
                "MAO_DOCKER_HOST": self.docker_host,
                "MAO_PUSH_RETRIES": "1",
                "MAO_URL": self.url,
                **self.extra_env,
            }
        )
        return env

    def start(self) -> Server:
        log = open(self.data_dir.parent / f"{self.name}-serve.log", "ab")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mao.cli.main", "serve", "--log-level", "warning"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def answered() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"maoctl serve exited with {self.proc.returncode}")
            return httpx.get(self.url + "/health", timeout=1).status_code == 200

        wait_for(answered, SERVE_START, "maoctl serve to answer /health", 0.1, ignore=(httpx.TransportError,))
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def maoctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, str(ROOT / "maoctl.py"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"maoctl {' '.join(args)} failed: {result.stdout}\n{result.stderr}")
        return result

    def wait_run(self, run_id: int, timeout: float = 60) -> dict:
        return wait_for(
            lambda: (
                (run := httpx.get(f"{self.url}/runs/{run_id}").json())["status"] not in ("pending", "running") and run
            ),
            timeout,
            f"run {run_id} to end",
            0.2,
        )
