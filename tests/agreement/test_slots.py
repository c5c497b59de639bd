"""Slots: from the schedule (not the clock at start), in the run record, the API, the CLI,
node commit trailers and each step container's environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from agreement_kit import trailers
from fastapi.testclient import TestClient
from waiting import wait_for

from mao.api.app import create_app
from mao.config import Settings
from mao.errors import InvalidInput
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetIn, PipelineIn, ToolIn
from mao.registry.keys import schedule_key
from mao.registry.memory import MemoryRegistry
from mao.slots import normalize_slot, parse_slot, slot_key

SEEN: list[dict[str, str]] = []


def record_env(spec, on_log) -> int:
    SEEN.append(dict(spec.env))
    (spec.output_dir / "out.txt").write_text(f"{spec.run_id}\n")
    return 0


@pytest.fixture
def standalone(tmp_path: Path, remote: Path):
    SEEN.clear()
    registry = MemoryRegistry()
    made = []

    def make(**settings) -> Instance:
        inst = Instance(
            Settings(instance_name="solo", data_dir=tmp_path / "solo", **settings),
            registry=registry,
            executor=FakeExecutor({"img": record_env}),
        )
        inst.setup()
        if "t" not in inst.catalog.tools():
            inst.catalog.add_tool(ToolIn(name="t", image="img"))
            inst.catalog.add_dataset(DatasetIn.model_validate({"name": "out", "body": {"master": str(remote)}}))
        if inst.store.find_pipeline("p") is None:
            inst.pipelines.init(
                PipelineIn.model_validate(
                    {
                        "name": "p",
                        "steps": [
                            {
                                "name": "s",
                                "tool": "t",
                                "output_dataset": "out",
                                "env": {"MAO_SLOT": "forged", "MAO_INSTANCE": "forged", "OWN": "kept"},
                            }
                        ],
                    }
                ),
            )
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.close()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2026-11-28T12:00:00Z", "2026-11-28T12:00:00Z"),
        ("2026-11-28T13:00:00+01:00", "2026-11-28T12:00:00Z"),
        ("20261128T120000Z", "2026-11-28T12:00:00Z"),
    ],
)
def test_slots_are_written_in_utc(text, expected):
    assert normalize_slot(text) == expected
    assert slot_key(text) == "20261128T120000Z"


@pytest.mark.parametrize(
    "bad", ["", "tomorrow", "2026-11-28T12:00:00", "2026-13-01T00:00:00Z", "2026-11-28T12:00:00.5Z", "x" * 50]
)
def test_invalid_slots_are_refused(bad):
    with pytest.raises(InvalidInput, match="slot"):
        parse_slot(bad)


def test_run_for_a_slot_records_it_everywhere(standalone, remote):
    inst = standalone()
    run = inst.store.get_run(inst.runner.run_sync("p", slot="2026-11-28T13:00:00+01:00"))
    assert run.status == "succeeded", run.error
    assert run.slot == "2026-11-28T12:00:00Z"
    env = SEEN[-1]
    assert env["MAO_SLOT"] == "2026-11-28T12:00:00Z"
    assert env["MAO_INSTANCE"] == "solo" and env["MAO_PIPELINE"] == "p" and env["MAO_STEP"] == "s"
    assert env["MAO_RUN_ID"] == str(run.id) and env["OWN"] == "kept"
    assert trailers(remote, run.steps[0].output_commit)["Mao-Slot"] == "2026-11-28T12:00:00Z"

    adhoc = inst.store.get_run(inst.runner.run_sync("p"))
    assert adhoc.slot is None
    assert SEEN[-1]["MAO_SLOT"] == "" and SEEN[-1]["MAO_INSTANCE"] == "solo"
    assert "Mao-Slot" not in trailers(remote, adhoc.steps[0].output_commit)


def test_api_takes_a_slot(standalone):
    inst = standalone()
    with TestClient(create_app(instance=inst, background=False)) as client:
        response = client.post("/pipeline/run", json={"name": "p", "slot": "2026-11-28T12:00:00Z"})
        assert response.status_code == 200, response.text
        run_id = response.json()["run_id"]
        inst.runner.wait(run_id, timeout=30)
        body = client.get(f"/runs/{run_id}").json()
        assert body["slot"] == "2026-11-28T12:00:00Z" and body["status"] == "succeeded"
        runs_before = len(inst.store.list_runs())
        for bad in (
            {"name": "p", "slot": "noon"},
            {"name": "p", "slot": "2026-11-28T12:00:00"},
            {"name": "p", "slot": "2026-11-28T12:00:00Z", "cron": "0 * * * *"},
        ):
            response = client.post("/pipeline/run", json=bad)
            assert response.status_code == 400, response.text
            assert "slot" in response.json()["error"]["message"]
        assert len(inst.store.list_runs()) == runs_before


def test_cli_refuses_a_bad_slot(maoctl):
    result = maoctl("pipeline", "run", "--name", "p", "--slot", "yesterday")
    assert result.code != 0
    assert "invalid slot" in result.output


def test_a_late_start_keeps_its_scheduled_slot(standalone):
    """The run fires ten minutes late (the instance was down): its slot is the fire time, not now."""
    inst = standalone(misfire_policy="run_once", misfire_grace_seconds=3600)
    inst.scheduler.schedule("p", "0 0 1 1 *")
    published = inst.registry.get(schedule_key("p", "solo"))
    assert {k: published[k] for k in ("cron", "timezone", "instance", "mode")} == {
        "cron": "0 0 1 1 *",
        "timezone": "UTC",
        "instance": "solo",
        "mode": "every",
    }
    assert published["since"].endswith("Z")
    fire_time = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
    inst.scheduler._scheduler.modify_job("p", next_run_time=fire_time)
    inst.scheduler.start()
    runs = wait_for(lambda: inst.store.list_runs("p"), 10, "the missed fire's run")
    assert len(runs) == 1
    inst.runner.wait(runs[0].id, timeout=30)
    run = inst.store.get_run(runs[0].id)
    assert run.trigger == "cron" and run.status == "succeeded", run.error
    assert run.slot == fire_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert SEEN[-1]["MAO_SLOT"] == run.slot

    inst.scheduler.unschedule("p")
    assert inst.registry.get(schedule_key("p", "solo")) is None
