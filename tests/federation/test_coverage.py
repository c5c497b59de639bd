"""Coverage on three instances and a real etcd cluster: ``every`` with one instance down for
a slot, backfill of a gap, ``one`` in real time with its claimer SIGKILLed mid-run; the grid
agrees with the node commits on the git remote."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fedkit import UNREACHABLE, Federation, Node, git
from waiting import wait_for

from mao.cron import next_fire_times
from mao.slots import slot_key, slot_of

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]

SRC = str(Path(__file__).resolve().parents[2] / "src")


def slot_pipeline(name: str, dataset: str, sleep: int = 0) -> dict:
    """One step writing ``<instance>-<slot>.txt`` (distinct files: merges never collide)."""
    script = (
        f"sleep {sleep}; " if sleep else ""
    ) + 'echo "$MAO_RUN_ID" > "/usr/src/app/data/$MAO_INSTANCE-$MAO_SLOT.txt"'
    return {
        "name": name,
        "steps": [{"name": f"{name}-w", "tool": "writer", "output_dataset": dataset, "cmd": ["sh", "-c", script]}],
    }


def git_delivered(federation: Federation, dataset: str, pipeline: str) -> Counter:
    """(slot, instance) -> node commits on the remote's branches carrying ``Mao-Slot``."""
    fmt = "%(trailers:unfold,only)%x1e"
    out = git(federation.repo(dataset), "log", "--all", "--no-merges", f"--format={fmt}")
    seen: Counter = Counter()
    for record in out.split("\x1e"):
        pairs = dict(line.split(": ", 1) for line in record.strip().splitlines() if ": " in line)
        if pairs.get("Mao-Pipeline") == pipeline and "Mao-Slot" in pairs and "Mao-Instance" in pairs:
            seen[(pairs["Mao-Slot"], pairs["Mao-Instance"])] += 1
    return seen


def grid_of(node: Node, pipeline: str, since: str, until: str | None = None, rebuild: bool = False) -> dict:
    params = {"pipeline": pipeline, "since": since, **({"until": until} if until else {})}
    if rebuild:
        params["rebuild"] = "true"
    return node.get("/federation/coverage", params=params)


def maoctl(node: Node, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "MAO_URL": node.url,
        "MAO_API_TOKEN": node.token,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "mao.cli.main", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_every_mode_instance_down_for_a_slot_then_backfill(federation: Federation) -> None:
    a, b, c = federation.add_nodes(3)
    federation.register_tool("writer")
    federation.register_dataset("cov")
    federation.define(slot_pipeline("daily", "cov"))
    for node in (a, b, c):
        assert (
            node.post("/pipeline/run", {"name": "daily", "cron": "0 4 * * *", "mode": "every"})["job"]["mode"]
            == "every"
        )
    schedules = a.get("/federation/schedules")["schedules"]
    assert [(s["pipeline"], s["instance"], s["mode"]) for s in schedules] == [
        ("daily", n, "every") for n in ("node-a", "node-b", "node-c")
    ]
    # the next four fire times, run explicitly as slot runs (the scheduler would take days)
    s1, s2, s3, s4 = (slot_of(t) for t in next_fire_times("0 4 * * *", "UTC", 4))
    since, until = slot_of(datetime.now(UTC)), slot_of(datetime.fromisoformat(s4[:-1] + "+00:00") + timedelta(days=1))

    federation.wait_runs([(n, n.run("daily", slot=s1)) for n in (a, b, c)])
    c.stop()  # down for the second slot
    federation.wait_runs([(n, n.run("daily", slot=s2)) for n in (a, b)])
    c.start()
    federation.wait_runs([(n, n.run("daily", slot=s3)) for n in (a, b, c)])
    # nobody runs s4: a gap

    grid = grid_of(b, "daily", since, until)
    rows = {r["slot"]: r for r in grid["slots"]}
    assert grid["gaps"] == [s4]
    assert rows[s1]["cells"] == dict.fromkeys(("node-a", "node-b", "node-c"), "delivered")
    assert rows[s2]["cells"] == {"node-a": "delivered", "node-b": "delivered", "node-c": "missing"}
    assert rows[s2]["covered"] and rows[s2]["delivered_by"] == ["node-a", "node-b"]
    assert rows[s4]["cells"] == dict.fromkeys(("node-a", "node-b", "node-c"), "missing")

    # the grid agrees with the git remote, and a rebuild from git alone gives the same grid
    on_git = git_delivered(federation, "cov", "daily")
    delivered = {(r["slot"], i) for r in grid["slots"] for i, cell in r["cells"].items() if cell == "delivered"}
    assert set(on_git) == delivered and set(on_git.values()) == {1}
    for key in (f"coverage/daily/{slot_key(s)}/" for s in (s1, s2, s3)):
        for name in ("node-a", "node-b", "node-c"):
            federation_delete(federation, key + name)
    assert grid_of(a, "daily", since, until)["gaps"] == [s1, s2, s3, s4]  # the index is gone
    rebuilt = grid_of(a, "daily", since, until, rebuild=True)
    assert [r["cells"] for r in rebuilt["slots"]] == [r["cells"] for r in grid["slots"]]
    assert grid_of(c, "daily", since, until)["gaps"] == [s4]  # restored into the index

    text = maoctl(a, "federation", "coverage", "daily", "--since", since, "--until", until)
    assert text.returncode == 0, text.stderr
    assert "1 gap(s)" in text.stdout and s4 in text.stdout and "–" in text.stdout and "✓" in text.stdout

    dry = maoctl(c, "federation", "backfill", "daily", "--since", since, "--until", until, "--dry-run")
    assert dry.returncode == 0 and s4 in dry.stdout
    assert not [r for r in c.runs(pipeline="daily") if r.get("slot") == s4]
    filled = maoctl(c, "federation", "backfill", "daily", "--since", since, "--until", until)
    assert filled.returncode == 0, filled.stdout + filled.stderr
    assert f"[1/1] ✓ slot {s4}" in filled.stdout
    after = grid_of(a, "daily", since, until)
    assert after["gaps"] == []
    assert {r["slot"]: r for r in after["slots"]}[s4]["cells"]["node-c"] == "delivered"
    assert git_delivered(federation, "cov", "daily")[(s4, "node-c")] == 1


def federation_delete(federation: Federation, key: str) -> None:
    import base64

    import httpx

    body = {"key": base64.b64encode((federation.prefix + key).encode()).decode()}
    member = next(m for m in federation.cluster.members if m.running)
    httpx.post(member.client_url + "/v3/kv/deleterange", json=body, timeout=5).raise_for_status()


def test_one_mode_exactly_one_delivery_per_slot_claimer_killed(federation: Federation) -> None:
    nodes = federation.add_nodes(3, coverage_claim_ttl=4, coverage_claim_poll=0.5)
    federation.register_tool("writer")
    federation.register_dataset("once")
    federation.define(slot_pipeline("once", "once", sleep=6))
    # schedule early in a minute, so that the first fire is the next minute's
    wait_for(lambda: datetime.now(UTC).second < 40, 30, "the start of a minute")
    for node in nodes:
        assert node.post("/pipeline/run", {"name": "once", "cron": "* * * * *", "mode": "one"})["job"]["mode"] == "one"
    since = slot_of(datetime.now(UTC))
    first = slot_of(next_fire_times("* * * * *", "UTC", 1)[0])

    claim = wait_for(
        lambda: federation.registry_value(f"claims/once/{slot_key(first)}"), 90, "the first claim", ignore=UNREACHABLE
    )
    claimer = next(n for n in nodes if n.name == claim["instance"])
    wait_for(
        lambda: any(r["status"] == "running" for r in claimer.runs(pipeline="once")),
        30,
        "the claimer's run",
        ignore=UNREACHABLE,
    )
    claimer.kill()  # SIGKILL mid-run
    killed_at = time.monotonic()
    others = [n for n in nodes if n is not claimer]

    def delivered_by_other() -> list:
        return [r for n in others for r in n.runs(pipeline="once") if r["slot"] == first and r["status"] == "succeeded"]

    wait_for(delivered_by_other, 50, "another instance delivering the killed claimer's slot", ignore=UNREACHABLE)
    took = time.monotonic() - killed_at
    second = slot_of(next_fire_times("* * * * *", "UTC", 1, after=datetime.fromisoformat(first[:-1] + "+00:00"))[0])
    wait_for(
        lambda: [
            r for n in others for r in n.runs(pipeline="once") if r["slot"] == second and r["status"] == "succeeded"
        ],
        90,
        "the second slot delivered",
        ignore=UNREACHABLE,
    )
    until = slot_of(datetime.fromisoformat(second[:-1] + "+00:00") + timedelta(minutes=1))
    # a watcher starts a run only while the slot is undelivered (and its claim gone); once every
    # instance sees both slots delivered, no duplicate can start, and any that did is in the runs
    wait_for(
        lambda: all(
            {r["slot"]: r for r in grid_of(n, "once", since, until)["slots"]}[s]["delivered_by"]
            for n in others
            for s in (first, second)
        ),
        30,
        "every instance seeing both slots delivered",
        ignore=UNREACHABLE,
    )
    runs = [r for n in others for r in n.runs(pipeline="once") if r["slot"] in (first, second)]
    assert Counter(r["slot"] for r in runs) == {first: 1, second: 1}, runs
    assert all(r["status"] == "succeeded" for r in runs), runs
    print(f"takeover of a SIGKILLed claimer's slot: delivered {took:.1f}s after the kill (claim TTL 4s, run 6s)")

    grid = grid_of(others[0], "once", since, until)
    rows = {r["slot"]: r for r in grid["slots"]}
    assert len(rows[first]["delivered_by"]) == 1 and len(rows[second]["delivered_by"]) == 1
    on_git = git_delivered(federation, "once", "once")
    assert {k for k in on_git if k[0] in (first, second)} == {
        (r["slot"], i) for r in grid["slots"] if r["slot"] in (first, second) for i in r["delivered_by"]
    }
    assert all(on_git[k] == 1 for k in on_git)


def test_every_mode_in_real_time_a_restarted_instance_does_not_catch_up_a_covered_slot(
    federation: Federation,
) -> None:
    nodes = federation.add_nodes(3)
    a, b, c = nodes
    federation.register_tool("writer")
    federation.register_dataset("live")
    federation.define(slot_pipeline("live", "live"))
    wait_for(lambda: datetime.now(UTC).second < 45, 30, "the start of a minute")
    for node in nodes:
        node.schedule("live", "* * * * *")
    since = slot_of(datetime.now(UTC))
    first = slot_of(next_fire_times("* * * * *", "UTC", 1)[0])
    c.stop()  # down for the first slot

    def delivered(node: Node, slot: str) -> list:
        return [r for r in node.runs(pipeline="live") if r["slot"] == slot and r["status"] == "succeeded"]

    wait_for(
        lambda: delivered(a, first) and delivered(b, first),
        120,
        "a and b delivering the first slot",
        ignore=UNREACHABLE,
    )
    c.start()  # its misfire catch-up finds the slot delivered by a and b
    wait_for(
        lambda: f"slot {first} of live ended while this instance was down; delivered by" in c.log_path.read_text(),
        30,
        "c's catch-up to find the first slot delivered",
    )
    assert [r for r in c.runs(pipeline="live") if r["slot"] == first] == []
    grid = grid_of(a, "live", since, slot_of(datetime.fromisoformat(first[:-1] + "+00:00") + timedelta(minutes=1)))
    row = {r["slot"]: r for r in grid["slots"]}[first]
    assert row["cells"] == {"node-a": "delivered", "node-b": "delivered", "node-c": "missing"}
    assert grid["gaps"] == []
    on_git = git_delivered(federation, "live", "live")
    assert {k for k in on_git if k[0] == first} == {(first, "node-a"), (first, "node-b")}
