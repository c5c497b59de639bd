"""The harness itself: three instances on one etcd cluster and one shared remote, started in seconds."""

from __future__ import annotations

import time

import pytest
from fedkit import UNREACHABLE, writer
from waiting import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]


def test_three_instances_share_the_registry_and_the_remote(federation) -> None:
    started = time.monotonic()
    a, b, c = federation.add_nodes(3)
    startup = time.monotonic() - started
    assert startup < 60, f"three instances took {startup:.1f}s to start"
    for node in (a, b, c):
        code, body = node.health()
        assert code == 200, body
        assert body["instance"] == node.name
    wait_for(
        lambda: all(federation.registry_value(f"instances/{n.name}") for n in (a, b, c)),
        10,
        "every instance's heartbeat",
        ignore=UNREACHABLE,
    )

    federation.register_tool("writer")
    federation.register_dataset("shared")
    assert b.get("/registry/tools/writer")["image"] == federation.image  # registered on a, seen by b
    federation.define(writer("hello", "writer", "shared", "hello.txt", "hi"))
    runs = federation.run_all("hello")
    records = federation.wait_runs([(n, runs[n.name]) for n in (a, b, c)])
    assert [r["status"] for r in records] == ["succeeded"] * 3, records
    log = federation.ground_truth_log("shared")
    assert {commit.trailers.get("Mao-Instance") for commit in log} - {None} == {"node-a", "node-b", "node-c"}
    for record in records:
        assert federation.reachable("shared", record["steps"][0]["output_commit"])
    assert federation.files("shared") == {"hello.txt": "hi\n"}
