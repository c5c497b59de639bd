"""A fire whose pipeline still has a run queued or running: ``skip`` (counted, the run in
the way named) or ``queue`` (recorded pending, started after it); at most
``max_parallel_runs`` runs at once; runs left pending by a stop after a restart."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from mao.config import Settings
from mao.events import ScheduleFired
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry
from mao.scheduler.scheduler import fire

SLOTS = [datetime(2026, 11, 28, 12, minute, tzinfo=UTC) for minute in range(6)]


def _slot(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class Gate:
    """A fake tool that waits until let through, counting the runs inside it at once."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.ran: list[tuple[str, str]] = []

    def __call__(self, spec: Any, on_log: Any) -> int:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.ran.append((spec.pipeline, spec.env["MAO_SLOT"]))
        try:
            self.open.wait(20)
            (spec.output_dir / f"{spec.pipeline}-{spec.run_id}.txt").write_text("x\n")
            return 0
        finally:
            with self.lock:
                self.inside -= 1


@pytest.fixture
def registry(tmp_path: Path) -> MemoryRegistry:
    reg = MemoryRegistry()
    remote = tmp_path / "out.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    from mao.catalog import Catalog

    Catalog(reg).add_tool(ToolIn(name="t", image="img"))
    Catalog(reg).add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(remote))))
    return reg


@pytest.fixture
def gate() -> Any:
    gate = Gate()
    yield gate
    gate.open.set()


def make(tmp_path: Path, registry: MemoryRegistry, gate: Gate, pipelines=("p",), **settings: Any) -> Instance:
    inst = Instance(
        Settings(instance_name="sched", data_dir=tmp_path / "data", **settings),
        registry=registry,
        executor=FakeExecutor({"img": gate}),
    )
    inst.setup()
    for name in pipelines:
        if inst.store.find_pipeline(name) is None:
            body = {"name": name, "steps": [{"name": f"s-{name}", "tool": "t", "output_dataset": "out"}]}
            inst.pipelines.init(PipelineIn.model_validate(body))
    return inst


def fired_events(inst: Instance) -> list[ScheduleFired]:
    seen: list[ScheduleFired] = []
    inst.events.subscribe(seen.append, ScheduleFired)
    return seen


def test_skip_counts_the_fire_and_names_the_queued_run(tmp_path, registry, gate) -> None:
    inst = make(tmp_path, registry, gate, pipelines=("busy", "p"), max_parallel_runs=1)
    events = fired_events(inst)
    try:
        inst.scheduler.schedule("p", "* * * * *")
        busy = inst.runner.start("busy")  # takes the only worker
        wait_for(lambda: gate.inside == 1, 20, "a run inside the tool")
        assert fire("sched", "p", SLOTS[0], scheduler=inst.scheduler, cron="* * * * *") == "started"
        [queued] = inst.store.list_runs("p")
        assert queued.status == "pending" and queued.slot == _slot(SLOTS[0]) and inst.runner.queued("p") == [queued.id]
        assert fire("sched", "p", SLOTS[1], scheduler=inst.scheduler, cron="* * * * *") == "skipped"
        assert [r.id for r in inst.store.list_runs("p")] == [queued.id]  # nothing recorded for the skipped fire

        [job] = inst.scheduler.jobs()
        assert (job["started"], job["queued"], job["skipped"]) == (1, 0, 1)
        assert job["last_skip"].startswith(f"slot {_slot(SLOTS[1])}: ")
        assert f"run {queued.id} (slot {_slot(SLOTS[0])}) is queued (pending)" in job["last_skip"]
        assert "(overlap_policy skip)" in job["last_skip"]

        started, skipped = (e.payload() for e in events)
        assert (started["outcome"], started["slot"], started["run_id"], started["reason"]) == (
            "started",
            _slot(SLOTS[0]),
            queued.id,
            None,
        )
        recorded = inst.store.get_run(queued.id).created_at.replace(tzinfo=UTC)
        assert started["lag_s"] == pytest.approx((recorded - SLOTS[0]).total_seconds(), abs=0.01)
        assert skipped["outcome"] == "skipped" and skipped["run_id"] is None and skipped["pipeline"] == "p"
        assert f"run {queued.id}" in skipped["reason"] and "queued" in skipped["reason"]

        gate.open.set()
        inst.runner.wait(busy, timeout=20)
        wait_for(lambda: inst.store.get_run(queued.id).status == "succeeded", 20, f"run {queued.id} to succeed")
    finally:
        inst.close()


def test_skip_names_a_running_run(tmp_path, registry, gate) -> None:
    inst = make(tmp_path, registry, gate)
    try:
        assert fire("sched", "p", SLOTS[0], scheduler=inst.scheduler, cron="* * * * *") == "started"
        wait_for(lambda: gate.inside == 1, 20, "a run inside the tool")
        [run] = inst.store.list_runs("p")
        assert fire("sched", "p", SLOTS[1], scheduler=inst.scheduler, cron="* * * * *") == "skipped"
        last = inst.scheduler.counts.of("p")["last_skip"]
        assert f"run {run.id} (slot {_slot(SLOTS[0])}) is running" in last
    finally:
        gate.open.set()
        inst.close()


def test_queue_runs_every_fire_in_order_one_at_a_time_up_to_the_limit(tmp_path, registry, gate) -> None:
    inst = make(tmp_path, registry, gate, overlap_policy="queue", max_queued_runs=3, max_parallel_runs=4)
    events = fired_events(inst)
    try:
        outcomes = [fire("sched", "p", when, scheduler=inst.scheduler, cron="* * * * *") for when in SLOTS[:5]]
        assert outcomes == ["started", "queued", "queued", "queued", "skipped"]
        runs = sorted(inst.store.list_runs("p"), key=lambda r: r.id)
        assert [r.slot for r in runs] == [_slot(s) for s in SLOTS[:4]]
        assert [e.reason for e in events[1:4]] == [f"after run {r.id}" for r in runs[:3]]
        assert "already has 3 runs queued (max_queued_runs 3)" in events[4].reason
        wait_for(lambda: gate.inside == 1, 20, "a run inside the tool")
        assert [inst.store.get_run(r.id).status for r in runs] == ["running", "pending", "pending", "pending"]
        gate.open.set()
        for run in runs:
            wait_for(lambda run=run: inst.store.get_run(run.id).status == "succeeded", 20, f"run {run.id} to succeed")
        assert gate.most == 1  # never two runs of one pipeline at once, though 4 workers were free
        assert gate.ran == [("p", _slot(s)) for s in SLOTS[:4]]
        last_skip = f"slot {_slot(SLOTS[4])}: {events[4].reason}"
        assert inst.scheduler.counts.of("p") == {"started": 1, "queued": 3, "skipped": 1, "last_skip": last_skip}
    finally:
        inst.close()


def test_at_most_max_parallel_runs_at_once_the_rest_pending(tmp_path, registry, gate) -> None:
    names = tuple(f"p{n}" for n in range(5))
    inst = make(tmp_path, registry, gate, pipelines=names, max_parallel_runs=2)
    try:
        ids = [inst.runner.start(name) for name in names]
        wait_for(lambda: gate.inside == 2, 20, "2 runs inside the tool")
        # both workers are inside the tool: the other three are held in the queue, not handed to a third
        wait_for(lambda: len(inst.runner.queued()) == 3, 20, "three runs held in the queue")
        statuses = [inst.store.get_run(run_id).status for run_id in ids]
        assert statuses.count("running") == 2 and statuses.count("pending") == 3
        assert inst.runner.queued() == [i for i, s in zip(ids, statuses, strict=True) if s == "pending"]
        # a queued run is cancelled at once, without waiting for a worker
        waiting = inst.runner.queued()[0]
        inst.runner.cancel(waiting)
        assert inst.store.get_run(waiting).status == "cancelled"
        assert inst.store.get_run(waiting).error == "cancelled while queued"
        gate.open.set()
        for run_id in ids:
            inst.runner.wait(run_id, timeout=20)
        assert gate.most == 2
        assert sorted(inst.store.get_run(i).status for i in ids) == ["cancelled"] + ["succeeded"] * 4
    finally:
        inst.close()


def test_pending_runs_after_a_restart_run_or_end_interrupted(tmp_path, registry, gate) -> None:
    inst = make(tmp_path, registry, gate, pipelines=("running", "recent", "adhoc", "old"))
    store = inst.store
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    steps = {name: store.get_pipeline(name).steps for name in ("running", "recent", "adhoc", "old")}
    running = store.create_run("running", steps["running"], trigger="cron", slot=_slot(now))
    store.update_run(running.id, status="running")
    recent = store.create_run("recent", steps["recent"], trigger="cron", slot=_slot(now - timedelta(minutes=5)))
    adhoc = store.create_run("adhoc", steps["adhoc"])
    old = store.create_run("old", steps["old"], trigger="cron", slot=_slot(now - timedelta(hours=3)))
    inst.close()  # the orchestrator stops with these left behind

    gate.open.set()
    again = make(tmp_path, registry, gate, misfire_grace_seconds=3600)
    try:
        assert again.recovery.recover() == [running.id, old.id]
        assert again.store.get_run(running.id).status == "interrupted"
        stale = again.store.get_run(old.id)
        assert stale.status == "interrupted" and "longer than misfire_grace_seconds ago" in stale.error
        for run in (recent, adhoc):
            again.runner.wait(run.id, timeout=20)
            assert again.store.get_run(run.id).status == "succeeded"
        assert ("recent", _slot(now - timedelta(minutes=5))) in gate.ran and ("adhoc", "") in gate.ran
    finally:
        again.close()


def test_pending_slot_runs_end_interrupted_with_misfire_policy_skip(tmp_path, registry, gate) -> None:
    inst = make(tmp_path, registry, gate)
    slot = _slot(datetime.now(UTC).replace(second=0, microsecond=0))
    run = inst.store.create_run("p", inst.store.get_pipeline("p").steps, trigger="cron", slot=slot)
    inst.close()
    again = make(tmp_path, registry, gate, misfire_policy="skip")
    try:
        assert again.recovery.recover() == [run.id]
        stopped = again.store.get_run(run.id)
        assert stopped.status == "interrupted" and "(misfire_policy skip)" in stopped.error
        assert again.runner.queued() == [] and gate.ran == []
    finally:
        again.close()


def test_the_jobs_listing_and_list_scheduled_show_the_counts(tmp_path, registry, gate, maoctl, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from mao.api.app import create_app

    inst = make(tmp_path, registry, gate)
    try:
        inst.scheduler.schedule("p", "0 12 * * *")
        fire("sched", "p", SLOTS[0], scheduler=inst.scheduler, cron="0 12 * * *")
        wait_for(lambda: gate.inside == 1, 20, "a run inside the tool")
        fire("sched", "p", SLOTS[1], scheduler=inst.scheduler, cron="0 12 * * *")
        with TestClient(create_app(instance=inst, background=False)) as client:
            [job] = client.get("/jobs").json()["jobs"]
            assert (job["id"], job["started"], job["queued"], job["skipped"]) == ("p", 1, 0, 1)
            assert "is running" in job["last_skip"]
            monkeypatch.setattr("mao.cli.client.httpx.Client", lambda **kw: client)
            shown = maoctl("tool", "list-scheduled")
        assert shown.code == 0, shown
        header, row = (line.split() for line in shown.out.splitlines() if line.split()[:1] in (["pipeline"], ["p"]))
        assert header[-2:] == ["fired", "skipped"] and row[-2:] == ["1", "1"]
        assert f"p: last skipped slot {_slot(SLOTS[1])}: pipeline 'p' already has a run in progress" in shown.out
    finally:
        gate.open.set()
        inst.close()
