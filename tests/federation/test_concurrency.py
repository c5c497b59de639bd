"""Many runs at once across the federation: nothing lost, nothing twice."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fedkit import writer

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]

PER_NODE = 10


def test_thirty_concurrent_runs_on_three_instances_distinct_files(federation) -> None:
    nodes = federation.add_nodes(3)
    federation.register_tool("writer")
    federation.register_dataset("many")
    for node in nodes:  # pipelines of each instance's own: distinct files, distinct node branches
        for k in range(PER_NODE):
            federation.define(
                writer(f"{node.name}-p{k}", "writer", "many", f"{node.name}-{k}.txt", "$HOSTNAME"), nodes=[node]
            )

    started = time.monotonic()
    runs = [(node, node.run(f"{node.name}-p{k}")) for k in range(PER_NODE) for node in nodes]
    records = federation.wait_runs(runs, timeout=300)
    took = time.monotonic() - started
    statuses = Counter(r["status"] for r in records)
    assert statuses == {"succeeded": 3 * PER_NODE}, [(r["id"], r["status"], r["error"]) for r in records]

    files = federation.files("many")
    expected = {f"{node.name}-{k}.txt" for node in nodes for k in range(PER_NODE)}
    assert set(files) == expected  # 0 lost
    log = federation.ground_truth_log("many")
    merged = Counter(
        (c.trailers["Mao-Instance"], c.trailers["Mao-Run"])
        for c in log
        if len(c.parents) == 2 and "Mao-Run" in c.trailers
    )
    assert set(merged) == {(node.name, str(run_id)) for node, run_id in runs}
    assert all(count == 1 for count in merged.values()), merged  # 0 duplicated
    for record in records:
        assert federation.reachable("many", record["steps"][0]["output_commit"])
    print(f"30 runs on 3 instances: {took:.1f}s")
