"""Triggers across a federation: three real instances on the real etcd, one shared remote.

A change made on A (its run's merge into ground-truth) runs B's and C's triggered pipeline
once each; a commit pushed by hand straight to the remote does too, and each run names the
commit; in ``one`` mode the three run a change once between them."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fedkit import GROUND_TRUTH, UNREACHABLE, Federation, Node, git, writer
from waiting import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "outside",
    "GIT_AUTHOR_EMAIL": "outside@example.org",
    "GIT_COMMITTER_NAME": "outside",
    "GIT_COMMITTER_EMAIL": "outside@example.org",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def consumer(name: str, federation: str = "every") -> dict[str, Any]:
    """Reads dataset ``src``, writes its instance's file in ``out``; runs when ``src`` moves."""
    return {
        "name": name,
        "steps": [
            {
                "name": f"{name}-c",
                "tool": "writer",
                "input_dataset": "src",
                "output_dataset": f"out-{name}",
                "cmd": ["sh", "-c", 'echo "$MAO_RUN_ID" > /usr/src/app/data/"$MAO_INSTANCE".txt'],
            }
        ],
        "trigger": {"datasets": ["src"], "debounce": "1s", "federation": federation},
    }


def push_by_hand(repo: Path, tmp: Path, content: str) -> str:
    """A commit made outside MAO, pushed straight to the remote's ground-truth; its sha."""
    work = tmp / f"hand-{content}"
    subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True, capture_output=True, env=GIT_ENV)
    subprocess.run(["git", "checkout", "-q", "-B", GROUND_TRUTH], cwd=work, check=True, env=GIT_ENV)
    (work / "by-hand.txt").write_text(content + "\n")
    for args in (
        ["add", "by-hand.txt"],
        ["commit", "-qm", f"by hand: {content}"],
        ["push", "-q", "origin", GROUND_TRUTH],
    ):
        subprocess.run(["git", *args], cwd=work, check=True, capture_output=True, env=GIT_ENV)
    return git(repo, "rev-parse", GROUND_TRUTH).strip()


def triggered(node: Node, pipeline: str) -> list[dict[str, Any]]:
    return [r for r in node.runs(pipeline=pipeline) if r["trigger"] == "dataset"]


def wait_triggered(node: Node, pipeline: str, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    """Wait for ``count`` triggered runs of ``pipeline`` on ``node``, all ended; oldest first."""
    runs = wait_for(
        lambda: (
            len(found := triggered(node, pipeline)) >= count
            and all(r["status"] not in ("pending", "running") for r in found)
            and found
        ),
        timeout,
        lambda: f"{count} triggered runs of {pipeline} on {node.name}\n{node.log_tail()}",
        interval=0.3,
        ignore=UNREACHABLE,
    )
    return sorted(runs, key=lambda r: r["id"])


def seen(node: Node, pipeline: str, sha: str) -> bool:
    heads = node.get(f"/pipeline/{pipeline}/triggers")["datasets"]
    return heads[0]["seen_commit"] == sha and not heads[0]["pending"]


def test_a_change_on_a_runs_b_and_c_once_each_and_so_does_a_push_from_outside(
    federation: Federation, tmp_path: Path
) -> None:
    # a long poll: the runs on b and c come from the notice of a's merge in the registry
    a, b, c = federation.add_nodes(3, trigger_poll_interval=10)
    federation.register_tool("writer")
    src = federation.register_dataset("src")
    federation.register_dataset("out-consume")
    federation.define(writer("produce", "writer", "src", "produced.txt"), [a])
    federation.define(consumer("consume"), [b, c])
    for node in (b, c):  # each has had its first look (the baseline: no ground-truth yet)
        wait_for(lambda n=node: n.get("/pipeline/consume/triggers")["datasets"][0]["seen_at"], 30, "a first look")

    produced = a.wait_run(a.run("produce"))
    assert produced["status"] == "succeeded", produced
    merged = git(src, "rev-parse", GROUND_TRUTH).strip()
    for node in (b, c):
        [run] = wait_triggered(node, "consume", 1)
        waited = datetime.fromisoformat(run["created_at"]) - datetime.fromisoformat(produced["finished_at"])
        print(f"{node.name}: triggered run recorded {waited.total_seconds():.2f}s after a's run ended")
        assert run["status"] == "succeeded", run
        assert run["trigger_changes"] == [f"src@{merged}"]
        assert node.run_record(run["id"])["steps"][0]["input_commit"] == merged
    stamped = {
        commit.trailers.get("Mao-Instance"): commit.trailers.get("Mao-Trigger")
        for commit in federation.ground_truth_log("out-consume")
    }
    assert stamped.get("node-b") == stamped.get("node-c") == f"src@{merged}"
    assert triggered(a, "consume") == []  # a does not have the pipeline

    by_hand = push_by_hand(src, tmp_path, "outside")
    for node in (b, c):
        first, second = wait_triggered(node, "consume", 2)  # exactly one more: the hand-made commit's
        assert second["trigger_changes"] == [f"src@{by_hand}"], second
        assert second["status"] == "succeeded", second
        wait_for(lambda n=node: seen(n, "consume", by_hand), 30, "the hand-made commit seen and run for")
        assert len(triggered(node, "consume")) == 2

    b.restart()  # the heads were kept: no run again for a change already run for
    wait_for(lambda: b.get("/pipeline/consume/triggers")["datasets"][0]["seen_commit"] == by_hand, 30, "b's look")
    later = push_by_hand(src, tmp_path, "after-restart")
    runs = wait_triggered(b, "consume", 3)
    assert [r["trigger_changes"] for r in runs][1:] == [[f"src@{by_hand}"], [f"src@{later}"]]


def test_one_mode_runs_a_change_once_across_the_federation(federation: Federation, tmp_path: Path) -> None:
    nodes = federation.add_nodes(3, trigger_poll_interval=2)
    federation.register_tool("writer")
    src = federation.register_dataset("src")
    federation.register_dataset("out-once")
    federation.define(consumer("once", federation="one"))
    for node in nodes:
        wait_for(lambda n=node: n.get("/pipeline/once/triggers")["datasets"][0]["seen_at"], 30, "a first look")

    sha = push_by_hand(src, tmp_path, "once")
    for node in nodes:  # every instance has seen the change and taken it as handled
        wait_for(lambda n=node: seen(n, "once", sha), 60, lambda n=node: f"{n.name} sees {sha}\n{n.log_tail()}")
    ran = {node.name: triggered(node, "once") for node in nodes}
    winners = [name for name, runs in ran.items() if runs]
    assert len(winners) == 1, ran
    [run] = ran[winners[0]]
    assert run["trigger_changes"] == [f"src@{sha}"]
    assert federation.registry_value(f"triggers/once/src@{sha}")["instance"] == winners[0]  # type: ignore[index]
