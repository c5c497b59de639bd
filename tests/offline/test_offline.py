"""Working without the registry: last-known definitions, deferred merges, replay oldest first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mao.delivery import BALLOT, MERGE
from mao.errors import NotFound, RegistryUnavailable
from mao.insights import KIND as INSIGHT
from mao.offline import FederationQueue, FederationReplayer
from mao.offline.replay import MAX_ATTEMPTS


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True).stdout


def branches(repo: Path) -> set[str]:
    return set(git(repo, "branch", "--format=%(refname:short)").split())


def lines(instance, run_id: int) -> list[str]:
    return [line.line for line in instance.store.logs(run_id)]


def test_reads_are_kept_and_served_only_while_the_registry_is_down(instance, registry) -> None:
    catalog = instance.catalog
    assert catalog.get_tool("collector")["image"] == "img/collect"  # read: kept in the local store
    registry.put("tools/collector", {"name": "collector", "image": "img/collect:2"})
    assert catalog.get_tool("collector")["image"] == "img/collect:2"  # the registry wins while it answers
    catalog.take_notes()

    registry.down = True
    assert catalog.get_tool("collector")["image"] == "img/collect:2"  # its last-known value
    notes = catalog.take_notes()
    assert len(notes) == 1 and "last-known definition of tool collector" in notes[0]
    assert catalog.take_notes() == []
    with pytest.raises(RegistryUnavailable):
        catalog.get_tool("never-read")  # nothing known: the registry's error stands
    with pytest.raises(RegistryUnavailable):
        catalog.tools()  # listings are never served stale

    registry.down = False
    registry.delete("tools/collector")
    with pytest.raises(NotFound):
        catalog.get_tool("collector")
    registry.down = True  # a definition the registry said is gone is not used offline
    with pytest.raises(RegistryUnavailable):
        catalog.get_tool("collector")


def test_run_without_registry_succeeds_and_its_merge_is_replayed(instance, registry, remote) -> None:
    instance.catalog.get_tool("collector")
    instance.catalog.get_dataset("observations")
    registry.down = True

    run_id = instance.runner.run_sync("collect", trigger="cron")
    run = instance.store.get_run(run_id)
    assert run.status == "succeeded", run.error
    step = run.steps[0]
    assert step.status == "succeeded" and step.pushed is True and step.merge_commit is None
    assert step.details["federation"] == "pending"
    log = "\n".join(lines(instance, run_id))
    assert "last-known definition of tool collector" in log
    assert "last-known definition of dataset observations" in log
    assert "merge deferred: federation pending" in log
    # the data plane went on: the node commit is on the remote, ground-truth is not there yet
    assert git(remote, "rev-parse", "gather-node-a").strip() == step.output_commit
    assert "ground-truth" not in branches(remote)

    replayer = instance.replayer
    assert replayer.replay_once() == 0  # still down: nothing done, the attempt recorded
    queue = FederationQueue(instance.store)
    [task] = queue.pending()
    assert task.kind == "merge" and task.run_id == run_id and task.step_id == step.id
    assert task.attempts == 1 and "down" in task.last_error

    registry.down = False
    assert replayer.replay_once() == 1
    assert queue.pending() == []
    step = instance.store.get_run(run_id).steps[0]
    assert step.details["federation"] == "done"
    assert step.merge_commit == git(remote, "rev-parse", "ground-truth").strip()
    git(remote, "merge-base", "--is-ancestor", step.output_commit, "ground-truth")
    assert "gather-node-a" in instance.catalog.get_dataset("observations")["nodes"]
    assert any("federation done" in line for line in lines(instance, run_id))
    assert any("lock merge-observations acquired after" in line for line in lines(instance, run_id))
    assert registry.get("locks/merge-observations") is None


def test_replay_goes_oldest_first_and_stops_while_the_registry_is_away(instance, registry, remote) -> None:
    instance.catalog.get_tool("collector")
    instance.catalog.get_dataset("observations")
    registry.down = True
    first = instance.runner.run_sync("collect")
    second = instance.runner.run_sync("collect")
    queue = FederationQueue(instance.store)
    assert [t.run_id for t in queue.pending()] == [first, second]

    seen: list[int] = []
    original = instance.replayer.handlers[MERGE]

    def spy(task, note):
        seen.append(task.run_id)
        return original(task, note)

    replayer = FederationReplayer(instance.queue, {MERGE: spy}, interval=60)
    assert replayer.replay_once() == 0
    assert seen == [first]  # the first failure stops the pass: the second was not tried
    assert [t.attempts for t in queue.pending()] == [1, 0]

    registry.down = False
    assert replayer.replay_once() == 2
    assert seen == [first, first, second]
    for run_id in (first, second):
        step = instance.store.get_run(run_id).steps[0]
        assert step.details["federation"] == "done"
        git(remote, "merge-base", "--is-ancestor", step.output_commit, "ground-truth")


def test_each_kind_is_done_by_the_handler_given_for_it(instance) -> None:
    queue = instance.queue
    calls = []

    def replay_ballot(task, note):
        calls.append(task.payload)
        return {"ballot": "cast"}

    run_id = instance.runner.run_sync("collect")
    step_id = instance.store.get_run(run_id).steps[0].id
    queue.enqueue("test-ballot", {"slot": "20261128T120000Z", "step": "gather"}, run_id=run_id, step_id=step_id)
    assert FederationReplayer(queue, {"test-ballot": replay_ballot}).replay_once() == 1
    assert calls == [{"slot": "20261128T120000Z", "step": "gather"}]
    assert instance.store.get_run(run_id).steps[0].details == {"federation": "done", "ballot": "cast"}


def test_a_step_waits_for_all_of_its_deferred_tasks(instance, registry) -> None:
    instance.catalog.get_tool("collector")
    instance.catalog.get_dataset("observations")
    registry.down = True
    run_id = instance.runner.run_sync("collect")
    step = instance.store.get_run(run_id).steps[0]
    exc = RegistryUnavailable("down")

    def replay_second(task, note):
        return {"second": True}

    instance.queue.defer("test-second", {"step": "gather"}, run_id=run_id, step_id=step.id, reason=exc)
    details = instance.store.get_run(run_id).steps[0].details
    assert details["federation"] == "pending" and len(details["federation_tasks"]) == 2
    registry.down = False
    replayer = FederationReplayer(instance.queue, {**instance.replayer.handlers, "test-second": replay_second})
    [first, second] = instance.queue.pending()
    assert replayer._replay(first) == 1
    assert instance.store.get_run(run_id).steps[0].details["federation"] == "pending"  # one more to go
    assert replayer._replay(second) == 1
    details = instance.store.get_run(run_id).steps[0].details
    assert details["federation"] == "done" and details["second"] is True


def test_a_kind_without_handler_is_retried_then_given_up(instance) -> None:
    queue = FederationQueue(instance.store)
    task_id = queue.enqueue("unknown-kind", {})
    replayer = instance.replayer
    for _ in range(MAX_ATTEMPTS):
        assert replayer.replay_once() == 0
    assert queue.pending() == []
    task = queue.get(task_id)
    assert task.done_at is not None and task.attempts == MAX_ATTEMPTS
    assert "no handler" in task.last_error


def test_deferred_work_survives_a_restart(instance, registry, remote, tmp_path) -> None:
    from mao.instance import Instance

    instance.catalog.get_tool("collector")
    instance.catalog.get_dataset("observations")
    registry.down = True
    run_id = instance.runner.run_sync("collect")
    instance.runner.shutdown()

    registry.down = False
    again = Instance(instance.settings, registry=registry, executor=instance.executor)
    again.setup()
    try:
        assert again.replayer.replay_once() == 1
        assert again.store.get_run(run_id).steps[0].details["federation"] == "done"
        assert "ground-truth" in branches(remote)
    finally:
        again.store.close()


def test_the_wiring_gives_the_replayer_a_handler_for_each_deferred_kind(instance) -> None:
    handlers = instance.replayer.handlers
    assert set(handlers) == {MERGE, BALLOT, INSIGHT}
    assert handlers[MERGE] == instance.merge_delivery.replay
    assert handlers[BALLOT] == instance.vote_delivery.replay
    assert handlers[INSIGHT] == instance.insights.replay
