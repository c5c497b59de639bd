"""Merge trains: whoever holds a dataset's merge lock merges every node commit waiting for it.

Real git on real bare remotes; the registry is the in-memory one (the same code runs on etcd
in tests/federation/test_merge_trains.py).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from waiting import wait_for

from mao.datasets import DatasetManager
from mao.datasets.groundtruth import Rider
from mao.registry.keys import TRAINS, merge_lock
from mao.registry.memory import MemoryRegistry
from mao.trains import MERGED_BY, PACK_LIMIT, Boarding, MergeTrain


def ancestors(inspect, remote: Path, ref: str = "refs/heads/ground-truth") -> set[str]:
    return set(inspect.git("rev-list", ref, cwd=remote).split())


def test_one_push_merges_the_holders_node_and_every_rider(
    manager: DatasetManager, make_manager, remote: Path, write_output, inspect, trailers_of
) -> None:
    others = [make_manager(name) for name in ("b", "c", "d")]
    mine = write_output(manager, str(remote), "step-a", {"a.txt": "A\n", "rows.csv": "a\n"})
    riders = []
    for other, name in zip(others, "bcd", strict=True):
        sha = write_output(other, str(remote), f"step-{name}", {f"{name}.txt": name, "rows.csv": f"{name}\n"})
        riders.append(Rider(f"step-{name}", sha, f"Merge step-{name}", {"Mao-Instance": name, MERGED_BY: "a"}))
    own, merges = manager.merge_train("ds", "step-a", "Merge step-a", {"Mao-Instance": "a"}, riders)
    head = inspect.rev(remote, "ground-truth")
    # one chain on the first-parent line: a's merge, then one merge per rider, in order
    chain = inspect.git("rev-list", "--first-parent", head, cwd=remote).split()
    assert chain[:4] == [merges[riders[2].commit], merges[riders[1].commit], merges[riders[0].commit], own]
    assert {mine, *(r.commit for r in riders)} <= ancestors(inspect, remote)
    assert inspect.files(remote, "ground-truth") == ["a.txt", "b.txt", "c.txt", "d.txt", "rows.csv"]
    assert sorted(inspect.file(remote, "ground-truth", "rows.csv").split()) == ["a", "b", "c", "d"]
    assert trailers_of(manager, remote, merges[riders[0].commit]) == {"Mao-Instance": "b", MERGED_BY: "a"}
    assert not manager.worktree_path("ds", "ground-truth").exists()  # every conflict settled with no worktree


def test_a_rider_the_clone_cannot_find_is_left_out(
    manager: DatasetManager, remote: Path, write_output, inspect
) -> None:
    write_output(manager, str(remote), "step-a", {"a.txt": "A\n"})
    ghost = Rider("step-z", "0" * 40, "Merge step-z", {})
    own, merges = manager.merge_train("ds", "step-a", "Merge step-a", {}, [ghost])
    assert merges == {} and inspect.rev(remote, "ground-truth") == own


def _node(manager: DatasetManager, remote: Path, write_output, name: str) -> Boarding:
    sha = write_output(manager, str(remote), f"step-{name}", {f"{name}.txt": name})
    return Boarding("ds", f"step-{name}", sha, f"Merge step-{name}", {"Mao-Instance": name})


@pytest.mark.parametrize("packed", [False, True], ids=["through-the-remote", "packed"])
def test_waiting_instances_ride_with_the_holder_and_never_take_the_lock(
    make_manager, remote: Path, write_output, inspect, packed: bool
) -> None:
    """Three instances find the lock held; once it frees, whoever takes it merges the other
    two: one merge_with call, two riders that return the merge of their commit without a lock.
    Their commits reach the holder through the remote, or packed in their posts."""
    registry = MemoryRegistry()
    blocker = registry.lock(merge_lock("ds"), ttl=30, owner="x")
    assert blocker.acquire(timeout=0)
    managers = {name: make_manager(name) for name in "abc"}
    if packed:
        write_output(managers["a"], str(remote), "step-base", {"base.txt": "base\n"})
        managers["a"].merge_to_ground_truth("ds", "step-base", "Merge base", {})
        nodes = {}
        for name in "abc":
            sha = _unpushed(managers[name], remote, f"step-{name}", {f"{name}.txt": name})
            nodes[name] = Boarding("ds", f"step-{name}", sha, f"Merge step-{name}", {"Mao-Instance": name})
    else:
        nodes = {name: _node(managers[name], remote, write_output, name) for name in "abc"}
    results: dict[str, object] = {}
    calls: list[tuple[str, int]] = []

    def run(name: str) -> None:
        manager, node = managers[name], nodes[name]
        train = MergeTrain(registry, owner=name, lock_ttl=30, poll=0.05)

        def merge_with(riders: list[Rider], fetch: bool) -> tuple[str, dict[str, str]]:
            calls.append((name, len(riders)))
            return manager.merge_train("ds", node.branch, node.message, node.trailers, riders, node.commit, fetch=fetch)

        def merge_alone() -> str:
            calls.append((name, 0))
            return manager.merge_to_ground_truth("ds", node.branch, node.message, node.trailers)

        def pack() -> tuple[str, bytes] | None:
            return manager.pack_node("ds", node.commit or "", 64 * 1024) if packed else None

        results[name] = train.merge(
            node,
            push=lambda: manager.push("ds", node.branch),
            merge_alone=merge_alone,
            merge_with=merge_with,
            pack=pack,
        )

    threads = [threading.Thread(target=run, args=(name,)) for name in "abc"]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(registry.list(TRAINS)) == 3, 30, "three riders waiting")
    blocker.release()
    for thread in threads:
        thread.join(60)
    assert calls and len(calls) == 1, calls
    holder, carried = calls[0]
    assert carried == 2
    merges = {name: results[name].merge for name in "abc"}  # type: ignore[attr-defined]
    for name in "abc":
        done = results[name]
        assert done.rider is (name != holder) and (done.by == holder if done.rider else True)  # type: ignore[attr-defined]
        assert nodes[name].commit in ancestors(inspect, remote, merges[name])
    assert set(merges.values()) <= ancestors(inspect, remote)
    assert registry.list(TRAINS) == {}  # every rider withdrew its post


def test_an_uncontended_merge_takes_the_lock_and_merges_alone(
    manager: DatasetManager, remote: Path, write_output, inspect
) -> None:
    registry = MemoryRegistry()
    node = _node(manager, remote, write_output, "a")
    pushes: list[str] = []
    done = MergeTrain(registry, owner="a", lock_ttl=30).merge(
        node,
        push=lambda: pushes.append("push") is None,
        merge_alone=lambda: manager.merge_to_ground_truth("ds", node.branch, node.message, node.trailers),
        merge_with=lambda riders, fetch: ("", {}),
    )
    assert not done.rider and done.merge == inspect.rev(remote, "ground-truth")
    assert pushes == []  # no separate push of the node branch when nobody holds the lock
    assert registry.get("locks/" + merge_lock("ds")) is None


def test_a_merge_that_waited_for_the_lock_starts_from_a_fresh_fetch(
    manager: DatasetManager, remote: Path, write_output, inspect
) -> None:
    """Whoever held the lock moved ground-truth: the node's merge is not tried from its earlier
    fetch (a push bound to be refused) but from a fresh one, with the riders waiting (none here)."""
    registry = MemoryRegistry()
    blocker = registry.lock(merge_lock("ds"), ttl=30, owner="x")
    assert blocker.acquire(timeout=0)
    node = _node(manager, remote, write_output, "a")
    calls: list[str] = []
    result: list[object] = []

    def merge_with(riders: list[Rider], fetch: bool) -> tuple[str, dict[str, str]]:
        calls.append(f"with {len(riders)}, fetch {fetch}")
        return manager.merge_train("ds", node.branch, node.message, node.trailers, riders, node.commit, fetch=fetch)

    def merge_alone() -> str:
        calls.append("alone")
        return manager.merge_to_ground_truth("ds", node.branch, node.message, node.trailers)

    train = MergeTrain(registry, owner="a", lock_ttl=30, poll=0.05)
    thread = threading.Thread(
        target=lambda: result.append(
            train.merge(
                node, push=lambda: manager.push("ds", node.branch), merge_alone=merge_alone, merge_with=merge_with
            )
        )
    )
    thread.start()
    wait_for(lambda: len(registry.list(TRAINS)) == 1, 30, "the node waiting as a rider")
    blocker.release()
    thread.join(60)
    assert calls == ["with 0, fetch True"]
    assert result and result[0].merge == inspect.rev(remote, "ground-truth")  # type: ignore[attr-defined]


def _unpushed(manager: DatasetManager, remote: Path, branch: str, files: dict[str, str]) -> str:
    """A node commit made on ground-truth as fetched, and not pushed."""
    worktree = manager.prepare_output("ds", str(remote), branch)
    for name, text in files.items():
        (worktree / name).write_text(text)
    sha = manager.commit_output(worktree, f"output of {branch}", {})
    assert sha is not None
    return sha


def test_riders_packs_are_merged_without_a_fetch_or_their_push(
    manager: DatasetManager, make_manager, remote: Path, write_output, inspect
) -> None:
    """Riders whose objects come packed in their posts: the holder, told ground-truth is as it
    last pushed it, takes the packs, merges and pushes, and never fetches."""
    write_output(manager, str(remote), "step-a", {"rows.csv": "h\n"})
    manager.merge_to_ground_truth("ds", "step-a", "Merge step-a", {})
    riders = []
    for name in "bc":
        other = make_manager(name)
        sha = _unpushed(other, remote, f"step-{name}", {"rows.csv": f"h\n{name}\n", f"{name}.txt": name})
        packed = other.pack_node("ds", sha, 64 * 1024)
        assert packed is not None and inspect.rev(remote, f"step-{name}") is None
        onto, pack = packed
        riders.append(Rider(f"step-{name}", sha, f"Merge step-{name}", {}, pack=pack, onto=onto))
    fetches = manager.git.by_subcommand["fetch"]
    own, merges = manager.merge_train("ds", "step-a", "Merge step-a", {}, riders, fetch=False)
    assert manager.git.by_subcommand["fetch"] == fetches
    assert set(merges) == {rider.commit for rider in riders}
    assert {rider.commit for rider in riders} <= ancestors(inspect, remote)
    assert inspect.file(remote, "ground-truth", "rows.csv") == "h\nb\nc\n"
    assert inspect.files(remote, "ground-truth") == ["b.txt", "c.txt", "rows.csv"]


def test_a_pack_that_is_corrupt_or_builds_on_an_unknown_commit_is_left_out(
    manager: DatasetManager, make_manager, remote: Path, write_output, inspect
) -> None:
    write_output(manager, str(remote), "step-a", {"a.txt": "A\n"})
    manager.merge_to_ground_truth("ds", "step-a", "Merge step-a", {})
    other = make_manager("b")
    sha = _unpushed(other, remote, "step-b", {"b.txt": "B\n"})
    packed = other.pack_node("ds", sha, 64 * 1024)
    assert packed is not None
    onto, pack = packed
    bad = [
        Rider("step-b", sha, "Merge step-b", {}, pack=pack[:12] + bytes(len(pack) - 12), onto=onto),
        Rider("step-b", sha, "Merge step-b", {}, pack=pack, onto="1" * 40),
    ]
    for rider in bad:
        own, merges = manager.merge_train("ds", "step-a", "Merge step-a", {}, [rider], fetch=False)
        assert merges == {} and inspect.rev(remote, "ground-truth") == own
    assert sha not in ancestors(inspect, remote)


def test_a_commit_larger_than_the_limit_is_not_packed(make_manager, remote: Path, write_output) -> None:
    other = make_manager("b")
    write_output(other, str(remote), "step-b", {"a.txt": "A\n"})
    other.merge_to_ground_truth("ds", "step-b", "Merge step-b", {})
    sha = _unpushed(other, remote, "step-b", {"big.bin": os.urandom(200_000).hex()})
    assert other.pack_node("ds", sha, 64 * 1024) is None
    assert other.pack_node("ds", sha, 1024 * 1024) is not None


def test_a_post_with_a_pack_past_the_limit_or_not_base64_is_taken_as_without_one() -> None:
    registry = MemoryRegistry()
    for name, pack in (("b", "A" * (PACK_LIMIT // 3 * 4 + 8)), ("c", "not base64!"), ("d", "UEFDSw==")):
        registry.put(
            f"{TRAINS}{name}/ds/step-{name}",
            {"dataset": "ds", "branch": f"step-{name}", "commit": name * 40, "onto": "0" * 40, "pack": pack},
        )
    riders = MergeTrain(registry, owner="a", lock_ttl=30)._riders(Boarding("ds", "step-a", None, "m", {}), set())
    assert {rider.branch: rider.pack for rider in riders} == {"step-b": None, "step-c": None, "step-d": b"PACK"}


def test_a_post_naming_no_commit_is_no_rider_and_a_rider_git_cannot_merge_is_left_out(
    manager: DatasetManager, make_manager, remote: Path, write_output, inspect
) -> None:
    """A post whose commit is a ref name or an option ("HEAD", "--all") is not read as a rider;
    a rider whose merge git cannot even try (an unknown commit's pack) does not stop the train."""
    registry = MemoryRegistry()
    for name, commit in (("b", "HEAD"), ("c", "--all"), ("d", "d" * 40)):
        registry.put(f"{TRAINS}{name}/ds/step-{name}", {"dataset": "ds", "branch": f"step-{name}", "commit": commit})
    riders = MergeTrain(registry, owner="a", lock_ttl=30)._riders(Boarding("ds", "step-a", None, "m", {}), set())
    assert [rider.commit for rider in riders] == ["d" * 40]
    write_output(manager, str(remote), "step-a", {"a.txt": "A\n"})
    own, merges = manager.merge_train("ds", "step-a", "Merge step-a", {}, [Rider("step-x", "HEAD", "m", {})])
    assert merges == {} and inspect.rev(remote, "ground-truth") == own
