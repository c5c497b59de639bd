"""Faults the federation must ride out: etcd leader loss under load, a lock holder killed with
SIGKILL, a remote that rejects pushes for a while."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from fedkit import UNREACHABLE, writer
from waiting import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]


def test_etcd_leader_loss_under_load(federation, fed_etcd) -> None:
    nodes = federation.add_nodes(3)
    federation.register_tool("writer")
    federation.register_dataset("load")
    for node in nodes:
        for k in range(4):
            federation.define(writer(f"{node.name}-l{k}", "writer", "load", f"{node.name}-{k}.txt", "x"), nodes=[node])

    runs = [(node, node.run(f"{node.name}-l{k}")) for k in range(4) for node in nodes]
    wait_for(
        lambda: all(any(r["status"] != "pending" for r in node.runs()) for node in nodes),
        60,
        "a run under way on every instance",
        ignore=UNREACHABLE,
    )
    leader = fed_etcd.leader_index()
    fed_etcd.stop_member(leader, sig=signal.SIGKILL)
    records = federation.wait_runs(runs, timeout=240)
    assert [r["status"] for r in records] == ["succeeded"] * len(runs), [(r["id"], r["error"]) for r in records]
    for node, run_id in runs:  # merged at once or, if the election outlasted the registry's patience, replayed
        wait_for(
            lambda n=node, r=run_id: n.run_record(r)["steps"][0]["details"].get("federation", "done") == "done",
            30,
            f"run {run_id} on {node.name} to settle with the federation",
            ignore=UNREACHABLE,
        )
        assert federation.reachable("load", node.run_record(run_id)["steps"][0]["output_commit"])
    assert len(federation.files("load")) == 12


HOLDER = """
import sys, time
from mao.registry.etcd import EtcdRegistry, make_clients
registry = EtcdRegistry(make_clients(sys.argv[1].split(","), timeout=3), sys.argv[2])
lock = registry.lock(sys.argv[3], ttl=int(sys.argv[4]), owner="doomed-holder")
assert lock.acquire(timeout=10)
print("held", flush=True)
time.sleep(600)
"""


def test_lock_holder_killed_frees_the_lock_within_its_ttl(federation, fed_etcd) -> None:
    (a,) = federation.add_nodes(1)
    federation.register_tool("writer")
    federation.register_dataset("locked")
    federation.define(writer("collect", "writer", "locked", "a.txt", "$HOSTNAME"))

    ttl = 4
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, ",".join(fed_etcd.endpoints), federation.prefix, "merge-locked", str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        run_id = a.run("collect")
        wait_for(
            lambda: any("committed" in line for line in a.logs(run_id)), 30, "the step to commit", ignore=UNREACHABLE
        )
        assert a.run_record(run_id)["status"] == "running"  # the lock is held: the merge waits
        killed = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        run = a.wait_run(run_id, timeout=60)
        freed_after = time.monotonic() - killed
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(10)
    assert run["status"] == "succeeded", run
    assert freed_after < ttl + 8  # the lease lapses within its TTL; the run then merges and ends
    waited = [
        float(m.group(1))
        for line in a.logs(run_id)
        if (m := re.search(r"lock merge-locked acquired after ([\d.]+)s", line))
    ]
    assert waited and waited[0] >= 1.0, a.logs(run_id)  # the wait is in the run's log
    assert federation.reachable("locked", run["steps"][0]["output_commit"])


REJECT = """#!/bin/sh
[ -e "$(dirname "$0")/../reject" ] && { echo "pushes rejected for now" >&2; exit 1; }
exit 0
"""


def test_remote_rejecting_pushes_loses_nothing(federation) -> None:
    (a,) = federation.add_nodes(1)
    federation.register_tool("writer")
    repo = federation.register_dataset("flaky")
    federation.define(writer("collect", "writer", "flaky", "$HOSTNAME.txt", "x"))
    hook = repo / "hooks" / "pre-receive"
    hook.write_text(REJECT)
    hook.chmod(0o755)

    (repo / "reject").touch()
    rejected = a.wait_run(a.run("collect"))
    assert rejected["status"] == "failed" and "the next run pushes it" in rejected["error"], rejected
    kept = rejected["steps"][0]["output_commit"]
    assert kept and not federation.ground_truth_log("flaky")

    (repo / "reject").unlink()
    later = a.wait_run(a.run("collect"))
    assert later["status"] == "succeeded", later
    assert federation.reachable("flaky", kept)  # the commit of the rejected run was pushed and merged
    assert federation.reachable("flaky", later["steps"][0]["output_commit"])
    assert len(federation.files("flaky")) == 2
