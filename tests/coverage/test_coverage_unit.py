"""Coverage without a federation: slot enumeration, the grid, claims of ``one``-mode slots
(two instances sharing one in-memory registry), the rebuild from git, published schedules."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from waiting import wait_for

from mao.catalog import Catalog
from mao.config import Settings
from mao.coverage.grid import Schedule, build_grid
from mao.coverage.window import parse_since, slot_end, slots_between
from mao.errors import InvalidInput
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.keys import COVERAGE, claim_key, gap_key, schedule_key
from mao.registry.memory import MemoryRegistry
from mao.slots import parse_slot

T0 = parse_slot("2026-11-28T12:00:00Z")


def test_slots_of_a_cron_in_a_window() -> None:
    assert slots_between("*/15 * * * *", "UTC", T0, T0 + timedelta(hours=1)) == [
        "2026-11-28T12:00:00Z",
        "2026-11-28T12:15:00Z",
        "2026-11-28T12:30:00Z",
        "2026-11-28T12:45:00Z",
        "2026-11-28T13:00:00Z",
    ]
    # a daily noon in Zurich is 11:00 UTC in winter
    assert slots_between("0 12 * * *", "Europe/Zurich", T0, T0 + timedelta(days=2)) == [
        "2026-11-29T11:00:00Z",
        "2026-11-30T11:00:00Z",
    ]
    assert slot_end("* * * * *", "UTC", T0) == T0 + timedelta(minutes=1)
    with pytest.raises(InvalidInput, match="more than"):
        slots_between("* * * * *", "UTC", T0 - timedelta(days=30), T0)


def test_since_is_a_duration_or_a_time() -> None:
    assert parse_since("24h", now=T0) == T0 - timedelta(hours=24)
    assert parse_since("90m", now=T0) == T0 - timedelta(minutes=90)
    assert parse_since("2026-11-28T12:00:00Z") == T0
    for bad in ("", "yesterday", "24x", "2026-11-28T12:00:00"):
        with pytest.raises(InvalidInput, match="since"):
            parse_since(bad, now=T0)


def _sched(instance: str, mode: str = "every", since: str | None = None) -> Schedule:
    return Schedule("p", instance, "* * * * *", "UTC", mode, since)


def test_grid_every_mode_marks_the_instance_that_did_nothing_missing() -> None:
    slots = [f"2026-11-28T12:0{i}:00Z" for i in range(3)]
    outcomes = {(s, i): "delivered" for s in slots for i in ("a", "b")}
    outcomes[(slots[1], "c")] = "failed"
    outcomes[(slots[0], "c")] = "delivered"
    grid = build_grid("p", [_sched("a"), _sched("b"), _sched("c")], outcomes, T0, T0 + timedelta(minutes=2, seconds=5))
    rows = {r["slot"]: r for r in grid["slots"]}
    assert grid["instances"] == ["a", "b", "c"]
    assert rows[slots[0]]["cells"] == {"a": "delivered", "b": "delivered", "c": "delivered"}
    assert rows[slots[1]]["cells"]["c"] == "failed"
    assert rows[slots[2]]["cells"]["c"] == "pending" and rows[slots[2]]["open"]  # 12:02 runs until 12:03
    assert grid["gaps"] == []
    later = build_grid("p", [_sched("a"), _sched("b"), _sched("c")], outcomes, T0, T0 + timedelta(minutes=3, seconds=1))
    assert {r["slot"]: r for r in later["slots"]}[slots[2]]["cells"]["c"] == "missing"


def test_grid_one_mode_gaps_first_and_not_due_when_covered() -> None:
    outcomes = {("2026-11-28T12:00:00Z", "b"): "delivered", ("2026-11-28T12:01:00Z", "a"): "failed"}
    scheds = [_sched("a", "one"), _sched("b", "one", since="2026-11-28T12:00:30Z")]
    grid = build_grid("p", scheds, outcomes, T0, T0 + timedelta(minutes=2, seconds=1))
    rows = {r["slot"]: r for r in grid["slots"]}
    assert rows["2026-11-28T12:00:00Z"]["cells"] == {"a": "not_due", "b": "delivered"}
    assert rows["2026-11-28T12:00:00Z"]["covered"] and rows["2026-11-28T12:00:00Z"]["delivered_by"] == ["b"]
    assert rows["2026-11-28T12:01:00Z"]["cells"] == {"a": "failed", "b": "missing"}
    assert grid["gaps"] == ["2026-11-28T12:01:00Z"]
    assert grid["counts"] == {"slots": 3, "closed": 2, "covered": 1, "gaps": 1}


# ---------------------------------------------------------------------- with instances


def _ok(spec, on_log) -> int:
    (spec.output_dir / f"{spec.env.get('MAO_INSTANCE', 'x')}-{spec.run_id}.txt").write_text("x\n")
    return 0


def _fail(spec, on_log) -> int:
    return 1


@pytest.fixture
def registry(tmp_path: Path) -> MemoryRegistry:
    reg = MemoryRegistry()
    remote = tmp_path / "out.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    Catalog(reg).add_tool(ToolIn(name="t", image="img"))
    Catalog(reg).add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(remote))))
    return reg


def _instance(tmp_path: Path, registry: MemoryRegistry, name: str, tool=_ok, **settings) -> Instance:
    inst = Instance(
        Settings(instance_name=name, data_dir=tmp_path / name, coverage_claim_poll=0.1, **settings),
        registry=registry,
        executor=FakeExecutor({"img": tool}),
    )
    inst.setup()
    definition = {"name": "p", "steps": [{"name": "s", "tool": "t", "output_dataset": "out"}]}
    inst.pipelines.init(PipelineIn.model_validate(definition))
    return inst


def _settle_all(instances: list[Instance], slot: str, seconds: float = 30) -> list[str]:
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    results: list[str] = [""] * len(instances)

    def one(k: int) -> None:
        results[k] = instances[k].claims.settle("p", slot, until)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(instances))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_one_mode_runs_each_slot_once_across_instances(tmp_path, registry) -> None:
    instances = [_instance(tmp_path, registry, n) for n in ("a", "b", "c")]
    try:
        for slot in ("2026-11-28T12:00:00Z", "2026-11-28T12:01:00Z"):
            assert _settle_all(instances, slot) == ["delivered"] * 3
            runs = [r for i in instances for r in i.store.list_runs("p") if r.slot == slot]
            assert [r.status for r in runs] == ["succeeded"]  # exactly one run, federation-wide
            claim = registry.get(claim_key("p", slot))
            assert claim and claim["done"] and claim["run_id"] == runs[0].id
        grid = instances[0].coverage.coverage("p", T0, now=T0 + timedelta(minutes=2))
        assert grid["gaps"] == [] and all(len(r["delivered_by"]) == 1 for r in grid["slots"])
    finally:
        for inst in instances:
            inst.close()


def test_one_mode_another_instance_takes_over_a_failed_slot(tmp_path, registry) -> None:
    bad = _instance(tmp_path, registry, "bad", tool=_fail)
    good = _instance(tmp_path, registry, "good")
    slot = "2026-11-28T12:00:00Z"
    try:
        until = datetime.now(UTC) + timedelta(seconds=30)
        first: list[str] = []
        claimer = threading.Thread(target=lambda: first.append(bad.claims.settle("p", slot, until)))
        claimer.start()
        wait_for(lambda: [r.status for r in bad.store.list_runs("p")] == ["failed"], 20, "the claimer's run to fail")
        assert good.claims.settle("p", slot, until) == "delivered"
        claimer.join(10)
        assert first == ["delivered"]  # the failed claimer saw the slot delivered, and ran it once only
        assert len(bad.store.list_runs("p")) == 1
        assert [r.status for r in good.store.list_runs("p")] == ["succeeded"]
        grid = good.coverage.coverage("p", T0, now=T0 + timedelta(minutes=5))
        assert grid["slots"][0]["cells"] == {"bad": "failed", "good": "delivered"}
    finally:
        bad.close()
        good.close()


def test_one_mode_a_dead_claimers_slot_is_taken_over_after_the_ttl(tmp_path, registry) -> None:
    inst = _instance(tmp_path, registry, "b", coverage_claim_ttl=2)
    slot = "2026-11-28T12:00:00Z"
    lease = registry.grant(2)  # a claimer that then stops refreshing: SIGKILLed
    assert registry.create(claim_key("p", slot), {"instance": "dead"}, lease)
    try:
        started = time.monotonic()
        assert inst.claims.settle("p", slot, datetime.now(UTC) + timedelta(seconds=30)) == "delivered"
        took = time.monotonic() - started
        assert 1.0 < took < 8, took
        assert [r.status for r in inst.store.list_runs("p")] == ["succeeded"]
    finally:
        inst.close()


def test_a_slot_nobody_delivers_is_a_gap(tmp_path, registry, caplog) -> None:
    inst = _instance(tmp_path, registry, "a", tool=_fail)
    try:
        assert inst.claims.settle("p", "2026-11-28T12:00:00Z", datetime.now(UTC) + timedelta(seconds=2)) == "gap"
        assert "gap: slot 2026-11-28T12:00:00Z of pipeline p" in caplog.text
    finally:
        inst.close()


def test_coverage_is_rebuilt_from_the_git_remote(tmp_path, registry) -> None:
    inst = _instance(tmp_path, registry, "a")
    try:
        run_id = inst.runner.run_sync("p", slot="2026-11-28T12:00:00Z")
        assert inst.store.get_run(run_id).status == "succeeded"
        assert registry.list(COVERAGE + "p/")  # the index has it
        for key in list(registry.list(COVERAGE)):
            registry.delete(COVERAGE + key)
        grid = inst.coverage.coverage("p", T0, now=T0 + timedelta(minutes=5))
        assert grid["slots"] == []
        grid = inst.coverage.coverage("p", T0, rebuild=True, now=T0 + timedelta(minutes=5))
        assert grid["slots"][0]["cells"] == {"a": "delivered"} and grid["restored"] == 1
        assert registry.list(COVERAGE + "p/")  # and the index again
    finally:
        inst.close()


def test_schedules_are_published_with_mode_and_removed(tmp_path, registry) -> None:
    inst = _instance(tmp_path, registry, "a")
    try:
        job = inst.scheduler.schedule("p", "*/5 * * * *", "one")
        assert job["mode"] == "one"
        (published,) = inst.coverage.schedules()
        assert published["mode"] == "one" and published["cron"] == "*/5 * * * *" and published["instance"] == "a"
        since = published["since"]
        inst.scheduler.start()  # republished at start: the since is kept
        assert inst.coverage.schedules()[0]["since"] == since
        with pytest.raises(InvalidInput, match="mode"):
            inst.scheduler.schedule("p", "*/5 * * * *", "some")
        inst.scheduler.unschedule("p")
        assert inst.coverage.schedules() == []
    finally:
        inst.close()


def test_a_restarting_instance_backfills_its_one_mode_gaps(tmp_path, registry) -> None:
    inst = _instance(tmp_path, registry, "a", coverage_backfill_on_start=True, coverage_backfill_max_age=200)
    try:
        inst.scheduler.schedule("p", "* * * * *", "one")  # paused: it never fires here
        key = schedule_key("p", "a")
        registry.put(key, {**registry.get(key), "since": "2000-01-01T00:00:00Z"})  # down for the last minutes
        gaps = inst.coverage.coverage("p", datetime.now(UTC) - timedelta(seconds=200))["gaps"]
        assert len(gaps) >= 2
        thread = inst.backfill_at_start()
        assert thread is not None
        thread.join(60)
        runs = sorted(inst.store.list_runs("p"), key=lambda r: r.id)
        assert all(r.status == "succeeded" for r in runs)
        slots = [r.slot for r in runs]
        assert slots == sorted(set(slots))  # oldest first, each once
        assert set(gaps[1:]) <= set(slots)  # (the oldest may have left the window meanwhile)
        # the slots that were gaps are filled (a minute that ended since is a gap of its own)
        after = inst.coverage.coverage("p", parse_slot(gaps[-1]))["gaps"]
        assert [slot for slot in after if slot <= gaps[-1]] == []
    finally:
        inst.close()


def test_backfill_at_start_is_off_by_default(tmp_path, registry) -> None:
    inst = _instance(tmp_path, registry, "a")
    try:
        inst.scheduler.schedule("p", "* * * * *", "one")
        assert inst.backfill_at_start() is None
    finally:
        inst.close()


def test_a_late_every_fire_catches_up_only_a_gap(tmp_path, registry) -> None:
    from mao.scheduler.scheduler import fire

    inst = _instance(tmp_path, registry, "b")
    covered, gap = parse_slot("2026-11-27T12:00:00Z"), parse_slot("2026-11-27T12:01:00Z")
    other = _instance(tmp_path, registry, "a")
    try:
        other.coverage.record("p", "2026-11-27T12:00:00Z", "delivered", 1)
        fire("b", "p", covered, scheduler=inst.scheduler, cron="* * * * *")  # ended, delivered by a: not caught up
        assert inst.store.list_runs("p") == []
        fire("b", "p", gap, scheduler=inst.scheduler, cron="* * * * *")  # ended, nobody delivered: caught up
        (run,) = inst.store.list_runs("p")
        assert run.slot == "2026-11-27T12:01:00Z"
        inst.runner.wait(run.id, timeout=30)
    finally:
        inst.close()
        other.close()


def test_an_every_mode_slot_that_ends_undelivered_is_logged_once_as_a_gap(tmp_path, registry, caplog) -> None:

    inst = _instance(tmp_path, registry, "a", tool=_fail)
    slot = "2026-11-27T12:00:00Z"
    try:
        run_id = inst.runner.run_sync("p", slot=slot)
        assert inst.store.get_run(run_id).status == "failed"
        assert inst.claims.check_gap("p", slot, datetime.now(UTC)) == "gap"
        assert f"gap: slot {slot} of pipeline p" in caplog.text
        assert registry.get(gap_key("p", "2026-11-27T12:00:00Z"))["seen_by"] == "a"
        inst.runner.run_sync("p", slot=slot)
        assert inst.coverage.coverage("p", parse_slot(slot), now=parse_slot(slot) + timedelta(hours=1))["gaps"] == [
            slot
        ]
    finally:
        inst.close()


@pytest.mark.parametrize(
    "args,message",
    [
        (["pipeline", "run", "--name", "p", "--mode", "one"], "--mode goes with --cron"),
        (["pipeline", "run", "--name", "p", "--cron", "* * * * *", "--mode", "some"], "invalid --mode 'some'"),
    ],
)
def test_mode_option_errors_are_one_line_and_send_nothing(args, message) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from maoctl_kit import run_maoctl

    code, out, err = run_maoctl([*args], env={"MAO_URL": "http://127.0.0.1:9"})  # nothing listens there
    assert code != 0 and message in out + err
    assert "connect" not in (out + err).lower()
