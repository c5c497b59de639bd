"""etcd without quorum: /health says so (not 200, and why), and recovers with the cluster."""

from __future__ import annotations

import time

import pytest
from fedkit import UNREACHABLE, writer
from waiting import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]


def test_health_is_not_ok_without_quorum_and_recovers(federation) -> None:
    (a,) = federation.add_nodes(1)
    assert a.health()[0] == 200
    federation.register_tool("writer")
    federation.register_dataset("obs")
    federation.define(writer("collect", "writer", "obs", "$HOSTNAME.txt", "x"))

    stopped = federation.lose_quorum()  # the old leader stays: it must notice it lost its followers
    assert len(stopped) == 2

    started = time.monotonic()
    code, body = wait_for(
        lambda: (h := a.health())[0] != 200 and h, 15, "/health to notice the lost quorum", ignore=UNREACHABLE
    )
    registry = body["checks"]["registry"]
    assert code == 503
    assert registry["ok"] is False and registry["reason"] == "no_quorum", body
    assert "no quorum" in registry["error"]
    assert "no quorum" in body["error"]["message"]
    assert body["checks"]["store"]["ok"] is True
    assert time.monotonic() - started < 15

    # a registry call says the same, not "cannot be reached"
    answer = a.request("GET", "/registry/tools", expect=503)
    assert "no quorum" in answer["error"]["message"], answer

    # and a run goes on: from the last-known definitions, its merge waiting for the quorum
    run = a.wait_run(a.run("collect"), timeout=120)
    assert run["status"] == "succeeded", (run, a.logs(run["id"]))
    assert run["steps"][0]["details"]["federation"] == "pending"
    print(f"run without quorum: {run['duration']}s")

    federation.restore_members()
    wait_for(lambda: a.health()[0] == 200, 20, "/health to recover with the quorum", ignore=UNREACHABLE)
    wait_for(
        lambda: a.run_record(run["id"])["steps"][0]["details"].get("federation") == "done",
        30,
        "the deferred merge once the quorum is back",
        ignore=UNREACHABLE,
    )
    assert federation.reachable("obs", run["steps"][0]["output_commit"])


def test_health_tells_unreachable_from_no_quorum(federation) -> None:
    (a,) = federation.add_nodes(1)
    a.cut_off()
    started = time.monotonic()
    code, body = a.health()
    assert time.monotonic() - started < 5
    assert code == 503 and body["checks"]["registry"]["reason"] == "unreachable", body
    assert "no etcd member is reachable" in body["checks"]["registry"]["error"]
    a.reconnect()
    wait_for(lambda: a.health()[0] == 200, 10, "/health to recover", ignore=UNREACHABLE)
