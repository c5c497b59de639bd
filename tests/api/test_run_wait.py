"""GET /runs/{id}?wait=: a long poll answered when the run ends, not a polling loop."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mao.api.app import create_app
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn

GATE = threading.Event()


def gated(spec, on_log) -> int:
    """A tool that writes a row once the test lets it go."""
    GATE.wait(30)
    (Path(spec.output_dir) / "rows.txt").write_text("row\n")
    on_log("wrote a row")
    return 0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Instance]]:
    GATE.clear()
    remote = tmp_path / "rows.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    settings = Settings(instance_name="waiter", data_dir=tmp_path / "data")
    instance = Instance(settings, executor=FakeExecutor({"img/gated": gated}))
    instance.setup()
    instance.catalog.add_tool(ToolIn(name="gated", image="img/gated"))
    instance.catalog.add_dataset(DatasetIn(name="rows", body=DatasetBody(master=str(remote))))
    instance.pipelines.init(
        PipelineIn.model_validate({"name": "p", "steps": [{"name": "s", "tool": "gated", "output_dataset": "rows"}]}),
    )
    with TestClient(create_app(instance=instance, background=False)) as client:
        yield client, instance
    GATE.set()
    instance.close()


def test_the_answer_comes_when_the_run_ends(served) -> None:
    client, instance = served
    run_id = client.post("/pipeline/run", json={"name": "p"}).json()["run_id"]
    assert client.get(f"/runs/{run_id}").json()["status"] in ("pending", "running")

    threading.Timer(0.5, GATE.set).start()
    asked = time.monotonic()
    answer = client.get(f"/runs/{run_id}", params={"wait": 30})
    waited = time.monotonic() - asked
    assert answer.status_code == 200
    assert answer.json()["status"] == "succeeded"
    assert 0.4 <= waited < 10  # held until the end, not until the 30 s
    assert answer.json()["steps"][0]["output_commit"]


def test_a_run_that_outlasts_the_wait_is_answered_as_it_is(served) -> None:
    client, _ = served
    run_id = client.post("/pipeline/run", json={"name": "p"}).json()["run_id"]
    asked = time.monotonic()
    answer = client.get(f"/runs/{run_id}", params={"wait": 1.5})
    assert 1.4 <= time.monotonic() - asked < 10
    assert answer.json()["status"] in ("pending", "running")


def test_an_ended_run_is_answered_at_once_and_bad_waits_are_400s(served) -> None:
    client, instance = served
    GATE.set()
    run_id = client.post("/pipeline/run", json={"name": "p"}).json()["run_id"]
    assert client.get(f"/runs/{run_id}", params={"wait": 30}).json()["status"] == "succeeded"
    asked = time.monotonic()
    assert client.get(f"/runs/{run_id}", params={"wait": 30}).json()["status"] == "succeeded"
    assert time.monotonic() - asked < 2
    assert client.get("/runs/99999", params={"wait": 1}).status_code == 404
    for bad in ("61", "-1", "soon"):
        refused = client.get(f"/runs/{run_id}", params={"wait": bad})
        assert refused.status_code == 400, bad
        assert "wait" in refused.text
