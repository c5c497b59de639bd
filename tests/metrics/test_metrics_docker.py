"""``maoctl serve`` with real Docker steps and real git remotes: ``/metrics`` over HTTP, with
the token, equal to ``GET /runs`` before and after a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from metrics_kit import TOKEN, runs_by_pipeline_and_status, samples, value
from waiting import SERVE_START, wait_for

from mao.config import Settings
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def docker_host() -> str:
    url = os.environ.get("MAO_TEST_DOCKER_HOST")
    if not url:
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail("MAO_TEST_DOCKER_HOST is not set (MAO_TEST_REQUIRE_SERVICES=1)")
        pytest.skip("MAO_TEST_DOCKER_HOST is not set")
    return url


class Serve:
    """``maoctl serve`` as a child process on a free port."""

    def __init__(self, data_dir: Path, docker_host: str, port: int) -> None:
        self.data_dir, self.docker_host, self.port = data_dir, docker_host, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Serve:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k == "MAO_LOCAL_REMOTE_ROOTS"}
        env.update(
            {
                "MAO_DATA_DIR": str(self.data_dir),
                "MAO_INSTANCE_NAME": "dock-metrics",
                "MAO_API_PORT": str(self.port),
                "MAO_API_TOKEN": TOKEN,
                "MAO_DOCKER_HOST": self.docker_host,
                "MAO_PULL_POLICY": "never",
            }
        )
        with open(self.data_dir.parent / "serve.log", "ab") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mao.cli.main", "serve", "--log-level", "warning"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def answered() -> bool:
            assert self.proc.poll() is None, f"maoctl serve exited with {self.proc.returncode}"
            return httpx.get(self.url + "/health", timeout=1).status_code == 200

        wait_for(answered, SERVE_START, "maoctl serve to answer /health", interval=0.1, ignore=(httpx.TransportError,))
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60, **kwargs)


@pytest.fixture
def prepared(tmp_path: Path, docker_host: str) -> Iterator[Path]:
    """A data directory with a tool on the busybox image, two datasets on bare remotes, and
    pipelines ``good`` (writes a row) and ``bad`` (its container exits 4), run in-process on Docker."""
    image = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
    data = tmp_path / "data"
    settings = Settings(instance_name="dock-metrics", data_dir=data, docker_host=docker_host, pull_policy="never")
    inst = Instance(settings)
    try:
        inst.setup()
        inst.catalog.add_tool(ToolIn(name="busybox", image=image))
        for name in ("rows", "other"):
            remote = tmp_path / f"{name}.git"
            subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
            inst.catalog.add_dataset(DatasetIn(name=name, body=DatasetBody(master=str(remote))))
        for name, dataset, cmd in (
            ("good", "rows", ["sh", "-c", "echo run $MAO_RUN_ID >> /usr/src/app/data/rows.txt"]),
            ("bad", "other", ["sh", "-c", "echo failing; exit 4"]),
        ):
            steps = [{"name": "write", "tool": "busybox", "output_dataset": dataset, "cmd": cmd}]
            inst.pipelines.init(PipelineIn.model_validate({"name": name, "steps": steps}))
        statuses = [inst.store.get_run(inst.runner.run_sync(name)).status for name in ("good", "bad", "good")]
        assert statuses == ["succeeded", "failed", "succeeded"]
        text = inst.metrics.exposition().decode()
        assert value(text, "mao_step_duration_seconds_count", pipeline="good", step="write", status="succeeded") == 2
        assert value(text, "mao_dataset_lock_wait_seconds_count", dataset="rows") == 2
    finally:
        inst.close()
    yield data


def by_pipeline_and_status(server: Serve) -> tuple[dict, dict]:
    listed = server.get("/runs", params={"limit": 1000})
    scraped = server.get("/metrics")
    assert listed.status_code == 200 and scraped.status_code == 200, (listed.text, scraped.text)
    from_runs = {key: float(n) for key, n in runs_by_pipeline_and_status(listed.json()["runs"]).items()}
    from_metrics = {(labels["pipeline"], labels["status"]): v for labels, v in samples(scraped.text, "mao_runs")}
    return from_runs, from_metrics


def test_served_metrics_count_runs_of_real_containers_across_restarts(prepared: Path, docker_host, free_port) -> None:
    server = Serve(prepared, docker_host, free_port()).start()
    try:
        assert httpx.get(server.url + "/metrics", timeout=10).status_code == 401  # the API's token protects it
        from_runs, from_metrics = by_pipeline_and_status(server)
        assert from_runs == from_metrics == {("good", "succeeded"): 2, ("bad", "failed"): 1}

        started = httpx.post(
            server.url + "/pipeline/run",
            json={"name": "good", "wait": True},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=120,
        )
        assert started.status_code == 200, started.text
        assert started.json()["status"] == "succeeded"
        from_runs, from_metrics = by_pipeline_and_status(server)
        assert from_runs == from_metrics == {("good", "succeeded"): 3, ("bad", "failed"): 1}
        text = server.get("/metrics").text
        assert value(text, "mao_run_duration_seconds_count", pipeline="good", status="succeeded") == 1
        assert value(text, "mao_info", instance="dock-metrics", registry="local") == 1
        assert value(text, "mao_instances_live") == 1  # its own heartbeat
    finally:
        server.stop()
