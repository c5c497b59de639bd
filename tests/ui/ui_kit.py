"""Helpers of the dashboard's tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from waiting import wait_for

ORIGIN = "http://testserver"
TOKEN = "ui-test-token-7f3a9c"
CHROMIUM = "/usr/bin/chromium"


def define(client: TestClient, headers: dict[str, str] | None = None) -> None:
    """Tools, local datasets and two pipelines, through the API."""
    h = headers or {}
    for tool, image in (("ok-tool", "img/ok"), ("gated-tool", "img/gated")):
        client.post("/registry/tools", json={"name": tool, "image": image}, headers=h).raise_for_status()
    for name in ("observations", "waits"):
        client.post("/bare-repo/init", json={"name": name, "register": True}, headers=h).raise_for_status()
    for pipeline, tool, dataset in (("demo", "ok-tool", "observations"), ("slow", "gated-tool", "waits")):
        body = {"name": pipeline, "steps": [{"name": f"{pipeline}-step", "tool": tool, "output_dataset": dataset}]}
        client.post("/pipeline/init", json=body, headers=h).raise_for_status()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A real ``maoctl serve`` child process on its own port and data directory."""

    data_dir: Path
    docker_host: str
    token: str | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    output: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def start(self) -> Served:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k == "MAO_LOCAL_REMOTE_ROOTS"}
        env.update(
            {
                "MAO_DATA_DIR": str(self.data_dir),
                "MAO_API_PORT": str(self.port),
                "MAO_INSTANCE_NAME": "ui-browser",
                "MAO_DOCKER_HOST": self.docker_host,
                "MAO_PULL_POLICY": "never",
                "MAO_PUSH_RETRIES": "1",
            }
        )
        if self.token:
            env["MAO_API_TOKEN"] = self.token
        self.output = self.data_dir.parent / "serve.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mao.cli.main", "serve", "--log-level", "warning"],
            env=env,
            stdout=open(self.output, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answered() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"maoctl serve exited with {self.proc.returncode}: {self.log()}")
            return httpx.get(self.url + "/health", timeout=1).status_code == 200

        wait_for(
            answered,
            30,
            lambda: f"maoctl serve to answer /health: {self.log()}",
            interval=0.1,
            ignore=(httpx.TransportError,),
        )
        return self

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-3000:] if self.output and self.output.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(method, self.url + path, headers=self.headers, timeout=30, **kwargs)
        response.raise_for_status()
        return response
