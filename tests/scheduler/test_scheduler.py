"""Cron schedules: validation, persistence across restarts, misfire policy, no overlap."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from waiting import wait_for

from mao.config import Settings
from mao.cron import next_fire_times, parse_cron
from mao.errors import InvalidInput, NotFound
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry
from mao.scheduler.scheduler import fire


def write(spec, on_log) -> int:
    (spec.output_dir / f"run-{spec.run_id}.txt").write_text("x\n")
    return 0


def make_instance(tmp_path: Path, registry: MemoryRegistry, **settings) -> Instance:
    inst = Instance(
        Settings(instance_name="sched", data_dir=tmp_path / "data", **settings),
        registry=registry,
        executor=FakeExecutor({"img": write}),
    )
    inst.setup()
    return inst


@pytest.fixture
def registry(tmp_path: Path) -> MemoryRegistry:
    reg = MemoryRegistry()
    remote = tmp_path / "out.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    from mao.catalog import Catalog

    Catalog(reg).add_tool(ToolIn(name="t", image="img"))
    Catalog(reg).add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(remote))))
    return reg


def define(inst: Instance, name: str = "p") -> None:
    inst.pipelines.init(
        PipelineIn.model_validate({"name": name, "steps": [{"name": "s", "tool": "t", "output_dataset": "out"}]})
    )


@pytest.mark.parametrize(
    "bad,why",
    [
        ("", "empty"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("61 * * * *", "61"),
        ("* 25 * * *", "25"),
        ("nonsense x y z w", "invalid cron"),
    ],
)
def test_invalid_cron_says_why(bad, why):
    with pytest.raises(InvalidInput, match=why):
        parse_cron(bad)


def test_next_fire_times_is_pure():
    start = datetime(2026, 1, 1, 11, 30, tzinfo=UTC)
    times = next_fire_times("0 12 * * *", "UTC", count=3, after=start)
    assert [t.isoformat() for t in times] == [
        "2026-01-01T12:00:00+00:00",
        "2026-01-02T12:00:00+00:00",
        "2026-01-03T12:00:00+00:00",
    ]
    zurich = next_fire_times("0 12 * * *", "Europe/Zurich", count=1, after=start)[0]
    assert zurich.utcoffset() == timedelta(hours=1)
    with pytest.raises(InvalidInput, match="timezone"):
        next_fire_times("0 12 * * *", "Mars/Olympus")


def test_schedules_survive_a_restart(tmp_path, registry):
    inst = make_instance(tmp_path, registry)
    define(inst)
    job = inst.scheduler.schedule("p", "0 12 * * *")
    assert job["id"] == "p" and job["cron"] == "0 12 * * *"
    inst.close()

    again = make_instance(tmp_path, registry)
    try:
        jobs = again.scheduler.jobs()
        assert [(j["id"], j["cron"], j["pipeline"]) for j in jobs] == [("p", "0 12 * * *", "p")]
        again.scheduler.unschedule("p")
        assert again.scheduler.jobs() == []
        with pytest.raises(NotFound):
            again.scheduler.unschedule("p")
    finally:
        again.close()


def test_scheduling_an_unknown_pipeline_is_refused(tmp_path, registry):
    inst = make_instance(tmp_path, registry)
    try:
        with pytest.raises(NotFound):
            inst.scheduler.schedule("ghost", "* * * * *")
        assert inst.scheduler.jobs() == []
    finally:
        inst.close()


def _missed(tmp_path, registry, policy: str) -> list:
    """Schedule, then pretend the instance was down over a fire time, then start serving."""
    inst = make_instance(tmp_path, registry, misfire_policy=policy, misfire_grace_seconds=3600)
    define(inst)
    inst.scheduler.schedule("p", "0 0 1 1 *")
    past = datetime.now(UTC) - timedelta(minutes=10)
    inst.scheduler._scheduler.modify_job("p", next_run_time=past)
    inst.close()

    restarted = make_instance(tmp_path, registry, misfire_policy=policy, misfire_grace_seconds=3600)
    try:
        restarted.scheduler.start()
        # the missed fire time is handled (run or skipped) and the job has moved on to its next one
        job = wait_for(
            lambda: (
                (j := restarted.scheduler.job("p"))["started"] + j["queued"] + j["skipped"] >= 1
                and datetime.fromisoformat(j["next_run_time"]) > datetime.now(UTC)
                and j
            ),
            10,
            "the missed fire time to be handled",
        )
        assert job["started"] + job["queued"] + job["skipped"] == 1, job
        runs = restarted.store.list_runs("p")
        for run in runs:
            restarted.runner.wait(run.id, timeout=10)
        return [restarted.store.get_run(r.id) for r in runs]
    finally:
        restarted.close()


def test_missed_fire_time_runs_once_with_run_once(tmp_path, registry):
    runs = _missed(tmp_path, registry, "run_once")
    assert len(runs) == 1
    assert runs[0].trigger == "cron" and runs[0].status == "succeeded"


def test_missed_fire_time_is_skipped_with_skip(tmp_path, registry):
    assert _missed(tmp_path, registry, "skip") == []


def test_fire_skips_while_the_previous_run_is_going(tmp_path, registry):
    gate = threading.Event()
    inst = make_instance(tmp_path, registry)
    inst._executor = FakeExecutor({"img": lambda spec, on_log: (gate.wait(10), 0)[1]})
    define(inst)
    inst.scheduler.start()
    try:
        fire("sched", "p", scheduler=inst.scheduler)
        wait_for(lambda: inst.store.list_runs("p"), 5, "the first fire's run")
        fire("sched", "p", scheduler=inst.scheduler)  # overlaps: skipped, not queued
        assert len(inst.store.list_runs("p")) == 1
        gate.set()
        inst.runner.wait(inst.store.list_runs("p")[0].id, timeout=10)
    finally:
        gate.set()
        inst.close()


def test_each_scheduler_fires_with_its_own_instance(tmp_path, registry):
    """Two serving instances of the same name in one process (two test clusters, say): each
    scheduler's jobs run on its own instance; nothing looks instances up by name."""
    instances = []
    for part in ("a", "b"):
        inst = make_instance(tmp_path / part, registry)
        define(inst)
        inst.scheduler.schedule("p", "0 0 1 1 *")
        inst.scheduler._scheduler.modify_job("p", next_run_time=datetime.now(UTC) + timedelta(seconds=1))
        instances.append(inst)
    try:
        for inst in instances:
            inst.scheduler.start()
        wait_for(lambda: all(i.store.list_runs("p") for i in instances), 30, "a cron run on each instance")
        for inst in instances:
            runs = inst.store.list_runs("p")
            assert len(runs) == 1 and runs[0].trigger == "cron"
            inst.runner.wait(runs[0].id, timeout=30)
        fire("sched", "p")  # called without the serving instance: skipped, not run elsewhere
        assert [len(i.store.list_runs("p")) for i in instances] == [1, 1]
    finally:
        for inst in instances:
            inst.close()
