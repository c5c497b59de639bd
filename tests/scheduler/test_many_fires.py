"""Two hundred schedules due on the same second, through the real APScheduler: every fire
recorded once with its slot, then every overlapping fire skipped and counted."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from waiting import wait_for

from mao.catalog import Catalog
from mao.config import Settings
from mao.events import ScheduleFired
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, ToolIn
from mao.registry.memory import MemoryRegistry
from mao.scheduler.scheduler import JOB_TABLE

COUNT = 200


def _slot(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _due_at(inst: Instance, when: datetime) -> None:
    for job in inst.scheduler._scheduler.get_jobs():
        inst.scheduler._scheduler.modify_job(job.id, next_run_time=when)


def test_many_schedules_due_at_once_are_each_recorded_then_skipped(tmp_path: Path) -> None:
    gate = threading.Event()
    registry = MemoryRegistry()
    remote = tmp_path / "out.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    Catalog(registry).add_tool(ToolIn(name="t", image="img"))
    Catalog(registry).add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(remote))))
    inst = Instance(
        Settings(instance_name="many", data_dir=tmp_path / "data", max_parallel_runs=1),
        registry=registry,
        executor=FakeExecutor({"img": lambda spec, on_log: (gate.wait(30), 0)[1]}),
    )
    inst.setup()
    names = [f"p{n:03d}" for n in range(COUNT)]
    for name in names:
        inst.store.add_pipeline(name, "", [{"name": f"s{name}", "tool": "t", "output_dataset": "out"}])
        inst.scheduler.schedule(name, "* * * * *")
    events: list[ScheduleFired] = []
    inst.events.subscribe(events.append, ScheduleFired)
    try:
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
        _due_at(inst, first)
        inst.scheduler.start()
        wait_for(lambda: len(events) >= COUNT, 60, f"{COUNT} fires of the first round")

        runs = inst.store.list_runs(limit=10 * COUNT)
        assert sorted(r.pipeline for r in runs) == names  # one run per schedule, none twice
        assert {(r.trigger, r.slot) for r in runs} == {("cron", _slot(first))}
        assert Counter(e.outcome for e in events) == {"started": COUNT}
        assert {e.slot for e in events} == {_slot(first)} and min(e.lag_s for e in events) >= 0
        assert {e.run_id for e in events} == {r.id for r in runs}
        with inst.store.engine.connect() as conn:  # the round's next fire times were written, all of them
            stored = [row[0] for row in conn.execute(text(f"SELECT next_run_time FROM {JOB_TABLE}"))]
        assert len(stored) == COUNT and min(stored) > first.timestamp()

        # the next round overlaps: one run executes (max_parallel_runs 1), the others are queued
        wait_for(lambda: len(inst.runner.queued()) == COUNT - 1, 60, f"{COUNT - 1} runs queued")
        second = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        _due_at(inst, second)
        wait_for(lambda: len(events) >= 2 * COUNT, 60, f"{COUNT} fires of the second round")
        later = events[COUNT:]
        assert Counter(e.outcome for e in later) == {"skipped": COUNT}
        assert {e.slot for e in later} == {_slot(second)}
        reasons = Counter("is queued (pending)" in e.reason for e in later)
        assert reasons == {True: COUNT - 1, False: 1}  # the one executing is named as running
        assert len(inst.store.list_runs(limit=10 * COUNT)) == COUNT
        jobs = inst.scheduler.jobs()
        assert {(j["started"], j["queued"], j["skipped"]) for j in jobs} == {(1, 0, 1)}
        assert all(j["last_skip"].startswith(f"slot {_slot(second)}: ") for j in jobs)
    finally:
        gate.set()
        inst.close()


def test_a_job_rescheduled_is_read_back_with_its_new_trigger(tmp_path: Path) -> None:
    inst = Instance(Settings(instance_name="many", data_dir=tmp_path / "data"), registry=MemoryRegistry())
    inst.setup()
    inst.store.add_pipeline("p", "", [{"name": "s", "tool": "t", "output_dataset": "out"}])
    try:
        inst.scheduler.schedule("p", "0 12 * * *")
        inst.scheduler.start()
        assert [j["cron"] for j in inst.scheduler.jobs()] == ["0 12 * * *"]  # read (and kept) once
        inst.scheduler.schedule("p", "30 6 * * *")
        [job] = inst.scheduler.jobs()
        assert job["cron"] == "30 6 * * *" and job["next_run_time"][11:16] == "06:30"
        assert (
            str(inst.scheduler._scheduler.get_job("p").trigger)
            == "cron[month='*', day='*', day_of_week='*', hour='6', minute='30']"
        )
    finally:
        inst.close()
