"""Slot deadlines through the API of a standalone instance (its local registry): the pipeline
says it, a bad one is refused, the schedules show it, and a passed deadline is a verdict in
the coverage grid and a count in /metrics, once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from mao.slots import parse_slot

STEPS = [{"name": "scan", "tool": "scanner", "output_dataset": "obs"}]


def define(client: TestClient, data_dir: Path) -> None:
    repo = data_dir / "repos" / "obs.git"
    assert client.post("/registry/tools", json={"name": "scanner", "image": "img/scanner:1"}).status_code == 200
    answer = client.post("/registry/datasets", json={"name": "obs", "body": {"master": str(repo)}})
    assert answer.status_code == 200, answer.text


def test_a_bad_deadline_is_refused_and_defines_nothing(client: TestClient, data_dir: Path) -> None:
    define(client, data_dir)
    answer = client.post("/pipeline/init", json={"name": "scan", "steps": STEPS, "deadline": "soon"})
    assert answer.status_code == 400
    assert "'soon' is not a duration" in answer.text
    assert "scan" not in client.get("/registry/pipelines").json()


def test_a_passed_deadline_is_one_verdict_in_the_grid_and_the_metrics(client: TestClient, data_dir: Path) -> None:
    define(client, data_dir)
    answer = client.post("/pipeline/init", json={"name": "scan", "steps": STEPS, "deadline": "90s"})
    assert answer.status_code == 200, answer.text
    job = client.post("/pipeline/run", json={"name": "scan", "cron": "* * * * *"}).json()["job"]
    (schedule,) = client.get("/federation/schedules", params={"pipeline": "scan"}).json()["schedules"]
    assert schedule["deadline"] == "90s"

    slot = parse_slot(job["next_run_time"])
    instance = client.app.state.instance  # type: ignore[attr-defined]
    assert instance.deadlines.check(slot + timedelta(seconds=89)) == []
    (verdict,) = instance.deadlines.check(slot + timedelta(seconds=91))
    assert verdict["status"] == "missed" and verdict["reason"] == "undelivered"
    assert instance.deadlines.check(slot + timedelta(seconds=95)) == []

    until = (slot + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    grid = client.get("/federation/coverage", params={"pipeline": "scan", "since": "1h", "until": until}).json()
    assert grid["deadlines_missed"] == [verdict["slot"]]
    assert [r["deadline"] for r in grid["slots"] if r["slot"] == verdict["slot"]] == ["missed"]
    assert grid["schedules"][0]["deadline"] == "90s"
    assert grid["deadline"] == "90s"
    page = client.get("/ui/pipelines/scan")
    assert page.status_code == 200, page.status_code
    assert "Each slot is due 90s after its fire time" in page.text
    metrics = client.get("/metrics").text
    assert 'mao_slot_deadline_missed_total{pipeline="scan"} 1.0' in metrics
