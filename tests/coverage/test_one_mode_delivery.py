"""``one`` mode delivers each slot once, even when a claimer dies after its push but before its
run ends: what the git remotes hold for the slot is its delivery (real git, in-memory registry)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mao.catalog import Catalog
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.keys import COVERAGE, claim_key
from mao.registry.memory import MemoryRegistry
from mao.slots import parse_slot

T0 = parse_slot("2026-11-28T12:00:00Z")
SLOT = "2026-11-28T12:00:00Z"
ONE_STEP = [{"name": "s", "tool": "t", "output_dataset": "out"}]
TWO_STEPS = [{"name": "s1", "tool": "t", "output_dataset": "out"}, {"name": "s2", "tool": "t", "output_dataset": "out"}]


def _write(spec, on_log) -> int:
    (spec.output_dir / f"{spec.step}-{spec.instance}-{spec.run_id}.txt").write_text("x\n")
    return 0


@pytest.fixture
def registry(tmp_path: Path) -> MemoryRegistry:
    reg = MemoryRegistry()
    remote = tmp_path / "out.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    Catalog(reg).add_tool(ToolIn(name="t", image="img"))
    Catalog(reg).add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(remote))))
    return reg


def _instance(tmp_path: Path, registry: MemoryRegistry, name: str, steps: list, tool=_write, **settings) -> Instance:
    inst = Instance(
        Settings(instance_name=name, data_dir=tmp_path / name, coverage_claim_poll=0.1, **settings),
        registry=registry,
        executor=FakeExecutor({"img": tool}),
    )
    inst.setup()
    inst.pipelines.init(PipelineIn.model_validate({"name": "p", "steps": steps}))
    return inst


def _remote(registry: MemoryRegistry) -> Path:
    return Path(Catalog(registry).get_dataset("out")["master"])


def _git(remote: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=remote, capture_output=True, text=True, check=True).stdout


def _slot_commits(remote: Path, step: str) -> list[str]:
    """The node commits of ``step`` for SLOT on the remote, read with plain git."""
    out = _git(remote, "log", "--all", "--no-merges", "--format=%H %(trailers:key=Mao-Step,valueonly,separator=)")
    found = []
    for line in out.splitlines():
        sha, _, found_step = line.partition(" ")
        message = _git(remote, "show", "--no-patch", "--format=%B", sha)
        if found_step.strip() == step and f"Mao-Slot: {SLOT}" in message:
            found.append(sha)
    return found


def _died_before_recording(registry: MemoryRegistry, who: str) -> None:
    """What a claimer killed before its run ended leaves: no coverage cell, a claim whose lease lapses."""
    for key in list(registry.list(COVERAGE)):
        registry.delete(COVERAGE + key)
    lease = registry.grant(2)
    assert registry.create(claim_key("p", SLOT), {"instance": who}, lease)


def test_a_slot_pushed_by_a_claimer_that_died_before_its_run_ended_is_not_run_again(tmp_path, registry) -> None:
    """Claimer ``a`` pushed the slot's node commit and its merge, then was killed: ``b`` takes the
    claim over, finds the commit on the git remote, records the slot delivered by ``a`` and
    neither runs nor merges anything."""
    a = _instance(tmp_path, registry, "a", ONE_STEP)
    b = _instance(tmp_path, registry, "b", ONE_STEP, coverage_claim_ttl=2)
    remote = _remote(registry)
    try:
        run_id = a.runner.run_sync("p", trigger="cron", slot=SLOT)
        assert a.store.get_run(run_id).status == "succeeded"
        _died_before_recording(registry, "a")
        ground_truth = _git(remote, "rev-parse", "ground-truth")

        assert b.claims.settle("p", SLOT, datetime.now(UTC) + timedelta(seconds=30)) == "delivered"

        assert b.store.list_runs("p") == [] and b.executor.calls == []  # not run a second time
        assert _git(remote, "rev-parse", "ground-truth") == ground_truth  # nor merged again
        assert len(_slot_commits(remote, "s")) == 1
        claim = registry.get(claim_key("p", SLOT))
        assert claim["done"] and claim["delivered_by"] == "a" and claim["instance"] == "b"
        grid = b.coverage.coverage("p", T0, now=T0 + timedelta(minutes=5))
        assert grid["slots"][0]["cells"] == {"a": "delivered"} and grid["gaps"] == []
    finally:
        a.close()
        b.close()

    c = _instance(tmp_path, registry, "c", ONE_STEP)  # a third instance sees it delivered, from the index
    try:
        assert c.claims.settle("p", SLOT, datetime.now(UTC) + timedelta(seconds=30)) == "delivered"
        assert c.store.list_runs("p") == []
    finally:
        c.close()


def test_a_claimer_that_died_between_two_steps_leaves_the_next_claimer_only_the_rest(tmp_path, registry) -> None:
    """``a`` delivered the first step of the slot and died in the second: ``b``'s run of the slot
    takes the first step's commit as it is (no second delivery of it) and runs the second."""

    def dies_in_s2(spec, on_log) -> int:
        return 1 if spec.step == "s2" else _write(spec, on_log)

    a = _instance(tmp_path, registry, "a", TWO_STEPS, tool=dies_in_s2)
    b = _instance(tmp_path, registry, "b", TWO_STEPS, coverage_claim_ttl=2)
    remote = _remote(registry)
    try:
        a.runner.run_sync("p", trigger="cron", slot=SLOT)
        [first] = _slot_commits(remote, "s1")
        assert _slot_commits(remote, "s2") == []
        _died_before_recording(registry, "a")

        assert b.claims.settle("p", SLOT, datetime.now(UTC) + timedelta(seconds=30)) == "delivered"

        [run] = b.store.list_runs("p")
        assert run.status == "succeeded"
        assert [spec.step for spec in b.executor.calls] == ["s2"]  # s1 was not run again
        steps = {step.name: step for step in b.store.get_run(run.id).steps}
        assert steps["s1"].status == "succeeded" and steps["s1"].output_commit == first
        assert _slot_commits(remote, "s1") == [first]
        assert len(_slot_commits(remote, "s2")) == 1
        assert b.coverage.coverage("p", T0, now=T0 + timedelta(minutes=5))["slots"][0]["cells"]["b"] == "delivered"
    finally:
        a.close()
        b.close()


def test_an_every_mode_run_of_a_slot_another_instance_delivered_still_runs(tmp_path, registry) -> None:
    """Only a claimed ``one``-mode run skips what the remotes hold: in ``every`` mode each
    instance delivers each slot."""
    a = _instance(tmp_path, registry, "a", ONE_STEP)
    b = _instance(tmp_path, registry, "b", ONE_STEP)
    remote = _remote(registry)
    try:
        a.runner.run_sync("p", trigger="cron", slot=SLOT)
        run_id = b.runner.run_sync("p", trigger="cron", slot=SLOT)
        assert b.store.get_run(run_id).status == "succeeded"
        assert [spec.step for spec in b.executor.calls] == ["s"]
        assert len(_slot_commits(remote, "s")) == 2
    finally:
        a.close()
        b.close()
