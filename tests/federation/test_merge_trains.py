"""Merge trains on a real etcd cluster: instances that find a dataset's merge lock held ride
with whoever takes it next, writing the same file on the same schedule."""

from __future__ import annotations

import pytest
from fedkit import writer
from waiting import wait_for

from mao.registry.etcd import EtcdRegistry, make_clients
from mao.registry.keys import TRAINS, merge_lock

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]


def test_three_writers_of_one_file_are_merged_by_one_train(federation) -> None:
    nodes = federation.add_nodes(3)
    federation.register_tool("writer")
    federation.register_dataset("shared")
    federation.define(writer("collect", "writer", "shared", "result.txt", "$HOSTNAME"))

    registry = EtcdRegistry(make_clients(federation.cluster.endpoints, timeout=3), federation.prefix)
    blocker = registry.lock(merge_lock("shared"), ttl=60, owner="test")
    assert blocker.acquire(timeout=10)
    try:
        runs = [(node, node.run("collect", slot="2026-12-06T12:00:00Z")) for node in nodes]
        # each finds the lock held: it pushes its node branch alone and waits as a rider
        wait_for(lambda: len(registry.list(TRAINS)) == 3, 120, "three riders waiting")
    finally:
        blocker.release()
    records = federation.wait_runs(runs, timeout=180)
    assert [r["status"] for r in records] == ["succeeded"] * 3, [(r["id"], r["error"]) for r in records]

    logs = {node.name: "\n".join(node.logs(run_id)) for node, run_id in runs}
    carriers = [name for name, text in logs.items() if "waiting node commits of other instances" in text]
    riders = [name for name, text in logs.items() if "train after" in text]
    # whoever took the lock first carried everyone waiting then; nobody queued behind it
    assert len(carriers) >= 1 and len(carriers) + len(riders) == 3, logs
    assert riders, logs

    log = federation.ground_truth_log("shared")
    merged_by = [c.trailers.get("Mao-Merged-By") for c in log if "Mao-Run" in c.trailers and len(c.parents) == 2]
    assert sum(1 for by in merged_by if by) == len(riders)
    for record in records:  # every node commit is reachable from ground-truth
        assert federation.reachable("shared", record["steps"][0]["output_commit"])
        assert federation.reachable("shared", record["steps"][0]["merge_commit"])
    assert registry.list(TRAINS) == {}  # every rider withdrew its post
    registry.close()
