"""Three instances writing the same file under the merge policy, over several rounds.

Every run must succeed and every node commit must be reachable from ground-truth: each node
branch takes ground-truth in before its step writes, so the instances' changes all merge.
"""

from __future__ import annotations

import pytest
from fedkit import writer

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]

ROUNDS = 3


def test_same_file_on_three_instances_over_several_rounds(federation) -> None:
    nodes = federation.add_nodes(3)
    federation.register_tool("writer")
    federation.register_dataset("same")  # the default policy: merge
    federation.define(writer("same", "writer", "same", "shared.txt", "$HOSTNAME"))  # one definition, everywhere

    records = []
    for round_ in range(ROUNDS):
        started = federation.run_all("same")
        done = federation.wait_runs([(node, started[node.name]) for node in nodes])
        records.extend(done)
        failed = [(r["id"], r["status"], r["error"]) for r in done if r["status"] != "succeeded"]
        assert not failed, f"round {round_ + 1}: {failed}"

    for record in records:
        commit = record["steps"][0]["output_commit"]
        assert commit and federation.reachable("same", commit), record
    assert set(federation.files("same")) == {"shared.txt"}
