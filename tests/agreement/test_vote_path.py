"""The vote step's path on one instance, on a memory registry that counts what it is asked:
the slot opened once, the ballot cast from what the step holds, a deferred ballot cast the
same way when the registry answers again."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agreement_kit import IMAGE, git, trailers, write_snapshot

from mao.agreement.ballots import BallotBox, SlotRef
from mao.config import Settings
from mao.delivery import merge_lock_ttl
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetIn, PipelineIn, ToolIn
from mao.offline import FederationQueue
from mao.registry.memory import MemoryRegistry

SLOT = "2026-11-28T12:00:00Z"
REF = SlotRef("metrics", "collect", "gather", SLOT)


class CountingRegistry(MemoryRegistry):
    """Counts reads and creates per key family (``datasets``, ``electorates``, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: Counter[str] = Counter()

    def get(self, key: str) -> dict[str, Any] | None:
        self.asked["get " + key.split("/", 1)[0]] += 1
        return super().get(key)

    def create(self, key: str, value: dict[str, Any], lease: Any = None) -> bool:
        self.asked["create " + key.split("/", 1)[0]] += 1
        return super().create(key, value, lease)


@pytest.fixture
def alone(tmp_path: Path) -> Iterator[tuple[Instance, CountingRegistry, Path]]:
    """One live instance, a ``vote`` dataset on a bare remote and the pipeline ``collect``."""
    remote = tmp_path / "remotes" / "metrics.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    registry = CountingRegistry()
    settings = Settings(instance_name="alpha", data_dir=tmp_path / "alpha", push_retries=0)
    inst = Instance(settings, registry=registry, executor=FakeExecutor({IMAGE: write_snapshot}))
    inst.setup()
    registry.put("instances/alpha", {"name": "alpha"})
    inst.catalog.add_tool(ToolIn(name="collector", image=IMAGE))
    inst.catalog.add_dataset(
        DatasetIn.model_validate({"name": "metrics", "body": {"master": str(remote), "policy": "vote"}})
    )
    steps = [{"name": "gather", "tool": "collector", "output_dataset": "metrics"}]
    inst.pipelines.init(PipelineIn.model_validate({"name": "collect", "steps": steps}))
    yield inst, registry, remote
    inst.close()


def test_a_vote_step_opens_its_slot_once_and_casts_from_what_it_holds(alone, monkeypatch) -> None:
    inst, registry, remote = alone
    registry.asked.clear()
    definitions: list[str] = []
    read = inst.catalog.get_dataset
    monkeypatch.setattr(inst.catalog, "get_dataset", lambda name: definitions.append(name) or read(name))

    run = inst.store.get_run(inst.runner.run_sync("collect", slot=SLOT))

    assert run.status == "succeeded", run.error
    [step] = run.steps
    ballot = step.details["ballot"]
    assert ballot == {"output_id": ballot["output_id"], "commit": step.output_commit, "instance": "alpha"} | {
        "run_id": run.id,
        "late": False,
    }
    assert inst.tallier.box.ballots(REF) == {"alpha": ballot}
    # alone, it is its own majority: the tally commit is in ground-truth
    assert trailers(remote, "ground-truth")["Mao-Vote-For"] == "alpha"
    assert git(remote, "show", "ground-truth:snapshot.csv") == f"slot,{SLOT}\nvalue,42\n"
    # the electorate was opened once, before the container, and read once more, under the
    # tally's lock; the dataset's definition was read once, when the step started
    assert registry.asked["create electorates"] == 1
    assert registry.asked["get electorates"] == 1
    assert definitions == ["metrics"]
    # the tally holds the dataset's lock as long as a merge does
    assert inst.tallier.lock_ttl == inst.merge_delivery.lock_ttl == merge_lock_ttl(inst.settings.registry_timeout)


def test_a_ballot_deferred_while_the_registry_is_away_is_cast_as_the_step_would_have(alone) -> None:
    inst, registry, remote = alone
    inst.catalog.get_tool("collector")
    inst.catalog.get_dataset("metrics")  # read once: the last-known copies serve while it is away
    registry.down = True

    run = inst.store.get_run(inst.runner.run_sync("collect", slot=SLOT))

    assert run.status == "succeeded", run.error
    [step] = run.steps
    assert step.pushed is True and step.details["federation"] == "pending"
    lines = [line.line for line in inst.store.logs(run.id)]
    assert any(line.startswith(f"could not open slot {SLOT} for the vote") for line in lines)
    assert any("ballot deferred: federation pending" in line for line in lines)
    [task] = FederationQueue(inst.store).pending()
    assert task.kind == "ballot" and task.step_id == step.id

    registry.down = False
    assert inst.replayer.replay_once() == 1

    ballot = BallotBox(registry).ballots(REF)["alpha"]
    assert ballot["commit"] == step.output_commit and ballot["run_id"] == run.id and ballot["late"] is False
    replayed = inst.store.get_run(run.id).steps[0]
    assert replayed.details["federation"] == "done" and replayed.details["ballot"] == ballot
    assert BallotBox(registry).electorate(REF)["electors"] == ["alpha"]  # opened by the replayed cast
    assert trailers(remote, "ground-truth")["Mao-Vote-For"] == "alpha"
    assert "gather-alpha" in inst.catalog.get_dataset("metrics")["nodes"]
