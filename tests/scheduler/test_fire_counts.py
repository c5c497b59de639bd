"""The scheduler's fire counts (started, queued, skipped) are kept in the local store: they
survive a restart of the instance on the same data directory, and go with their schedule."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from waiting import wait_for

from mao.catalog import Catalog
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry
from mao.scheduler.scheduler import fire

ZERO = {"started": 0, "queued": 0, "skipped": 0, "last_skip": None}


@pytest.fixture
def registry(tmp_path: Path) -> MemoryRegistry:
    reg = MemoryRegistry()
    remote = tmp_path / "out.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    Catalog(reg).add_tool(ToolIn(name="t", image="img"))
    Catalog(reg).add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(remote))))
    return reg


def _instance(tmp_path: Path, registry: MemoryRegistry, gate: threading.Event, **settings) -> Instance:
    def tool(spec, on_log) -> int:
        gate.wait(30)
        (spec.output_dir / f"run-{spec.run_id}.txt").write_text("x\n")
        return 0

    inst = Instance(
        Settings(instance_name="sched", data_dir=tmp_path / "data", **settings),
        registry=registry,
        executor=FakeExecutor({"img": tool}),
    )
    inst.setup()
    return inst


def _counts(inst: Instance) -> dict:
    job = inst.scheduler.job("p")
    assert job is not None
    return {key: job[key] for key in ZERO}


def _finish(inst: Instance, gate: threading.Event) -> None:
    gate.set()
    for run in inst.store.list_runs("p"):
        inst.runner.wait(run.id, timeout=30)


def test_fire_counts_survive_a_restart(tmp_path, registry) -> None:
    gate = threading.Event()
    inst = _instance(tmp_path, registry, gate)
    try:
        inst.pipelines.init(
            PipelineIn.model_validate({"name": "p", "steps": [{"name": "s", "tool": "t", "output_dataset": "out"}]}),
        )
        inst.scheduler.schedule("p", "0 0 1 1 *")
        inst.scheduler.start()
        assert fire("sched", "p", scheduler=inst.scheduler) == "started"
        assert fire("sched", "p", scheduler=inst.scheduler) == "skipped"  # the first run is still going
        before = _counts(inst)
        assert before["started"] == 1 and before["queued"] == 0 and before["skipped"] == 1
        assert "overlap_policy skip" in before["last_skip"]
        _finish(inst, gate)
    finally:
        gate.set()
        inst.close()

    gate = threading.Event()
    again = _instance(tmp_path, registry, gate, overlap_policy="queue")
    try:
        assert _counts(again) == before  # read back from the local store
        again.scheduler.start()
        assert fire("sched", "p", scheduler=again.scheduler) == "started"
        assert fire("sched", "p", scheduler=again.scheduler) == "queued"
        after = _counts(again)
        assert after == {**before, "started": 2, "queued": 1}
        _finish(again, gate)
    finally:
        gate.set()
        again.close()

    third = _instance(tmp_path, registry, threading.Event())
    try:
        assert _counts(third) == after
        third.scheduler.unschedule("p")  # the counts go with the schedule
        third.scheduler.schedule("p", "0 0 1 1 *")
        assert _counts(third) == ZERO
    finally:
        third.close()

    fourth = _instance(tmp_path, registry, threading.Event())
    try:
        assert _counts(fourth) == ZERO
    finally:
        fourth.close()


def test_a_missed_fire_skipped_at_start_is_still_counted_after_the_next_restart(tmp_path, registry) -> None:
    """A fire APScheduler drops as missed never reaches the fire recorder: it is written all the same."""
    gate = threading.Event()
    gate.set()
    inst = _instance(tmp_path, registry, gate, misfire_policy="skip")
    inst.pipelines.init(
        PipelineIn.model_validate({"name": "p", "steps": [{"name": "s", "tool": "t", "output_dataset": "out"}]})
    )
    inst.scheduler.schedule("p", "0 0 1 1 *")
    inst.scheduler._scheduler.modify_job("p", next_run_time=datetime.now(UTC) - timedelta(minutes=10))
    inst.close()

    restarted = _instance(tmp_path, registry, gate, misfire_policy="skip")
    try:
        restarted.scheduler.start()
        wait_for(lambda: _counts(restarted)["skipped"] == 1, 10, "the missed fire to be counted")
    finally:
        restarted.close()

    again = _instance(tmp_path, registry, gate, misfire_policy="skip")
    try:
        counts = _counts(again)
        assert counts["skipped"] == 1 and counts["started"] == 0
        assert "misfire" in counts["last_skip"]
        assert again.store.list_runs("p") == []
    finally:
        again.close()
