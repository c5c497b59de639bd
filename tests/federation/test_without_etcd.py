"""An instance cut off from etcd keeps running its pipelines; the federation's part waits and is
replayed when etcd answers again."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from fedkit import ROOT_MAOCTL, UNREACHABLE, writer
from waiting import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]


def test_cut_off_instance_runs_and_its_commit_reaches_ground_truth_later(federation) -> None:
    a, b = federation.add_nodes(2)
    federation.register_tool("writer")
    federation.register_dataset("obs")
    definition = writer("collect", "writer", "obs", "$HOSTNAME.txt", "collected")
    federation.define(definition)  # reads the tool and dataset: a and b keep them locally
    first = a.wait_run(a.run("collect"))
    assert first["status"] == "succeeded", first

    a.cut_off()
    code, health = a.health()
    assert code == 503 and health["checks"]["registry"]["reason"] == "unreachable", health
    assert "no etcd member is reachable" in health["checks"]["registry"]["error"]

    started = time.monotonic()
    run = a.wait_run(a.run("collect"), timeout=60)
    took = time.monotonic() - started
    assert run["status"] == "succeeded", (run, a.logs(run["id"]))
    step = run["steps"][0]
    assert step["pushed"] is True and step["merge_commit"] is None
    assert step["details"]["federation"] == "pending"
    log = "\n".join(a.logs(run["id"]))
    assert "working from the last-known definition of tool writer" in log
    assert "working from the last-known definition of dataset obs" in log
    assert "merge deferred: federation pending" in log
    # git, the data plane, went on: the node commit is on the remote, not yet in ground-truth
    commit = step["output_commit"]
    assert (
        subprocess.run(
            ["git", "--git-dir", str(federation.repo("obs")), "cat-file", "-e", commit], check=False
        ).returncode
        == 0
    )
    assert not federation.reachable("obs", commit)

    # the federation went on meanwhile
    other = b.wait_run(b.run("collect"))
    assert other["status"] == "succeeded" and other["steps"][0]["merge_commit"]

    shown = subprocess.run(
        [sys.executable, ROOT_MAOCTL, "runs", "show", str(run["id"])],
        env={**a.env(), "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0 and "pending" in shown.stdout, shown.stdout + shown.stderr

    a.reconnect()
    done = wait_for(
        lambda: (r := a.run_record(run["id"]))["steps"][0]["details"].get("federation") == "done" and r,
        30,
        "the deferred merge to be replayed",
        ignore=UNREACHABLE,
    )
    assert done["status"] == "succeeded"
    assert federation.reachable("obs", commit)
    assert done["steps"][0]["merge_commit"] and federation.reachable("obs", done["steps"][0]["merge_commit"])
    merges = [
        c
        for c in federation.ground_truth_log("obs")
        if c.trailers.get("Mao-Run") == str(run["id"])
        and c.trailers.get("Mao-Instance") == "node-a"
        and len(c.parents) == 2
    ]
    assert len(merges) == 1  # merged once
    assert "collect-w-node-a" in federation.registry_value("datasets/obs")["nodes"]
    assert any("federation done" in line for line in a.logs(run["id"]))
    wait_for(lambda: a.health()[0] == 200, 15, "a to be healthy again", ignore=UNREACHABLE)
    assert took < 30, f"the cut-off run took {took:.1f}s"
    print(f"cut-off run: {run['duration']}s, run with etcd: {first['duration']}s")


def test_cut_off_instance_restarted_keeps_working_and_replays_after_restart(federation) -> None:
    """Deferred work is durable: it is replayed by the next process serving the data directory."""
    (a,) = federation.add_nodes(1)
    federation.register_tool("writer")
    federation.register_dataset("obs")
    federation.define(writer("collect", "writer", "obs", "a.txt", "$HOSTNAME"))

    a.cut_off()
    a.restart()  # starts without etcd: recovery, scheduler and API come up anyway
    run = a.wait_run(a.run("collect"), timeout=60)
    assert run["status"] == "succeeded", (run, a.logs(run["id"]))
    assert run["steps"][0]["details"]["federation"] == "pending"

    a.kill()  # SIGKILL while the merge waits for etcd
    a.reconnect()
    a.start()
    done = wait_for(
        lambda: (r := a.run_record(run["id"]))["steps"][0]["details"].get("federation") == "done" and r,
        30,
        "the deferred merge to be replayed after the restart",
        ignore=UNREACHABLE,
    )
    assert federation.reachable("obs", done["steps"][0]["output_commit"])


def test_cron_fire_while_cut_off_is_not_lost(federation) -> None:
    """A real cron fire (the next minute) on an instance without etcd: the slot runs and settles later."""
    (a,) = federation.add_nodes(1)
    federation.register_tool("writer")
    federation.register_dataset("obs")
    federation.define(writer("tick", "writer", "obs", "$HOSTNAME.txt", "tick"))

    a.cut_off()
    job = a.schedule("tick", "* * * * *")
    assert job["next_run_time"]
    fired = wait_for(
        lambda: [r for r in a.runs(pipeline="tick") if r["trigger"] == "cron"], 75, "the cron fire", ignore=UNREACHABLE
    )
    run = a.wait_run(fired[0]["id"], timeout=60)
    assert run["status"] == "succeeded", (run, a.logs(run["id"]))
    assert run["steps"][0]["details"]["federation"] == "pending"
    a.request("DELETE", "/jobs/tick", expect=None)

    a.reconnect()
    wait_for(
        lambda: a.run_record(run["id"])["steps"][0]["details"].get("federation") == "done",
        30,
        "the deferred merge of the cron run",
        ignore=UNREACHABLE,
    )
    assert federation.reachable("obs", run["steps"][0]["output_commit"])
