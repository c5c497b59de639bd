"""Helpers of the dashboard's tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi.testclient import TestClient
from waiting import SERVE_START, wait_for

ORIGIN = "http://testserver"
TOKEN = "ui-test-token-7f3a9c"
CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


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


METRIC_RULES = {"rows": {"range": {"min": 10, "max": 50}}, "ratio": {"change": {"max_pct": 20, "window": 2}}}
MEASURES = [(20, 1.0), (25, 1.05), (60, 1.1), (30, 2.0), (28, 1.5), (35, 1.45)]
"""(rows, ratio) of the runs of ``measure``: the third breaks the range of rows, the fourth the
change of ratio (2.0 against the mean 1.075 of the two before)."""
SUSPECT = {2, 3}


def slot_hours_ago(hours: int) -> str:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
    return hour.strftime("%Y-%m-%dT%H:%M:%SZ")


def populate(client, reports: list[dict], headers: dict[str, str] | None = None) -> dict[str, object]:
    """:func:`define`, then what the quality pages show: pipeline ``measure`` (tool
    ``img/metrics``, rules :data:`METRIC_RULES`) run for the last hours' slots with
    :data:`MEASURES`, scheduled hourly; ``broken`` (``img/fail``) failed once; ``demo`` run
    once; a vote dataset ``agreed`` with one tally of pipeline ``voter``. Returns the run ids."""
    h = headers or {}

    def post(path: str, body: dict) -> dict:
        response = client.post(path, json=body, headers=h)
        response.raise_for_status()
        return response.json()

    define(client, h)
    post("/registry/tools", {"name": "metric-tool", "image": "img/metrics"})
    post("/registry/tools", {"name": "broken-tool", "image": "img/fail"})
    count = {"name": "count", "tool": "metric-tool", "output_dataset": "observations", "metrics": METRIC_RULES}
    post("/pipeline/init", {"name": "measure", "description": "counts rows", "steps": [count]})
    post(
        "/pipeline/init",
        {"name": "broken", "steps": [{"name": "oops", "tool": "broken-tool", "output_dataset": "waits"}]},
    )
    measured = []
    for index, (rows, ratio) in enumerate(MEASURES):
        reports.append({"metrics": {"rows": rows, "ratio": ratio}, "insight": {"rows": rows, "run": index + 1}})
        slot = slot_hours_ago(len(MEASURES) - index)
        measured.append(post("/pipeline/run", {"name": "measure", "slot": slot, "wait": True})["run_id"])
    broken = post("/pipeline/run", {"name": "broken", "wait": True})["run_id"]
    demo = post("/pipeline/run", {"name": "demo", "wait": True})["run_id"]
    path = post("/bare-repo/init", {"name": "agreed"})["path"]
    post("/registry/datasets", {"name": "agreed", "body": {"master": path, "nodes": [], "policy": "vote"}})
    post(
        "/pipeline/init", {"name": "voter", "steps": [{"name": "cast", "tool": "ok-tool", "output_dataset": "agreed"}]}
    )
    voter = post("/pipeline/run", {"name": "voter", "slot": slot_hours_ago(1), "wait": True})["run_id"]
    post("/pipeline/run", {"name": "measure", "cron": "0 * * * *"})
    return {"measure": measured, "broken": broken, "demo": demo, "voter": voter}


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
            SERVE_START,
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


# ---------------------------------------------------------------------------- browser


class Watch:
    """Console errors, page errors and every request's host, for one browser context (``server``:
    anything with the ``url`` the pages come from)."""

    def __init__(self, context, server) -> None:
        self.server_host = urlsplit(server.url).netloc
        self.errors: list[str] = []
        self.hosts: set[str] = set()
        self.requests: list[str] = []
        context.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        context.on("weberror", lambda err: self.errors.append(str(err.error)))
        context.on("request", self._request)

    def _request(self, request) -> None:
        self.requests.append(request.url)
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss"):
            self.hosts.add(parts.netloc)

    def check(self, expected: tuple[str, ...] = ()) -> None:
        """No console error but the ``expected`` ones (substrings, in order)."""
        assert len(self.errors) == len(expected), self.errors
        for error, part in zip(self.errors, expected, strict=True):
            assert part in error, self.errors
        assert self.hosts == {self.server_host}, self.hosts


def shoot(
    browser,
    server,
    artifacts: Path,
    paths: dict[str, str],
    storage: dict | None = None,
    ready: dict[str, str] | None = None,
) -> None:
    """Each page at desktop and phone width, light and dark; at 375 px nothing overflows
    sideways. ``ready`` names, per page, a selector to wait for before the picture."""
    for scheme in ("light", "dark"):
        for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            context = browser.new_context(viewport=size, color_scheme=scheme, storage_state=storage)
            watch = Watch(context, server)
            page = context.new_page()
            for name, path in paths.items():
                page.goto(server.url + path)
                page.wait_for_load_state("networkidle")
                if ready and name in ready:
                    page.locator(ready[name]).first.wait_for()
                page.screenshot(path=str(artifacts / f"{name}-{size_name}-{scheme}.png"), full_page=True)
                background = page.evaluate("getComputedStyle(document.body).backgroundColor")
                dark = sum(int(c) for c in re.findall(r"\d+", background)[:3]) < 200
                assert dark == (scheme == "dark"), (name, scheme, background)
                if size_name == "phone":
                    width = page.evaluate("document.documentElement.scrollWidth")
                    assert width <= PHONE["width"], (name, width)
            watch.check()
            context.close()
