"""Ground truth by vote on a real federation: three `maoctl serve` instances, a 3-member etcd
cluster and one shared git remote; every dataset here has ``"policy": "vote"``.

Each instance runs the same slot through ``POST /pipeline/run {"name", "slot"}``; its step's
tool reads ``MAO_INSTANCE`` to make one instance (or all) disagree. The three instances are
started once for the module; each test writes a dataset and a pipeline of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fedkit import ROOT_MAOCTL, UNREACHABLE, Federation, Node
from waiting import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]

ALL = "node-a,node-b,node-c"


@pytest.fixture(scope="module")
def fed(
    fed_etcd, fed_docker_host: str, fed_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    federation = Federation(fed_etcd, tmp_path_factory.mktemp("fedvote"), fed_docker_host, fed_image)
    try:
        federation.add_nodes(3)
        federation.register_tool("voter")
        yield federation
    finally:
        federation.close()
        federation.restore_members()


@pytest.fixture(autouse=True)
def _logs_on_failure(fed: Federation, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(fed.logs())


def voting(fed: Federation, name: str, script: str, deadline: int = 60) -> str:
    """A vote dataset ``name`` and a one-step pipeline ``name`` writing ``out.txt`` with ``script``
    (a shell snippet whose stdout becomes the file), defined on every instance."""
    fed.register_dataset(name, policy="vote", vote_deadline=deadline)
    fed.define(
        {
            "name": name,
            "steps": [
                {
                    "name": f"{name}-s",
                    "tool": "voter",
                    "output_dataset": name,
                    "cmd": ["sh", "-c", f"{{ {script}; }} > /usr/src/app/data/out.txt"],
                }
            ],
        }
    )
    return name


def run_slot(fed: Federation, pipeline: str, slot: str, nodes: list[Node] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``slot`` on each instance at once; every run must succeed."""
    nodes = nodes or fed.nodes
    started = fed.run_all(pipeline, nodes, slot=slot)
    done = {n.name: r for n, r in zip(nodes, fed.wait_runs([(n, started[n.name]) for n in nodes]), strict=True)}
    failed = {k: (r["status"], r["error"]) for k, r in done.items() if r["status"] != "succeeded"}
    assert not failed, failed
    return done


def outcome(node: Node, dataset: str, slot: str, wanted: str | tuple[str, ...], timeout: float = 30) -> dict[str, Any]:
    """The slot's entry in ``GET /datasets/{name}/votes?slot=T`` once its outcome is ``wanted``."""
    wanted = (wanted,) if isinstance(wanted, str) else wanted

    def settled() -> dict[str, Any] | None:
        slots = node.votes(dataset, slot)["slots"]
        return slots[0] if slots and slots[0]["outcome"] in wanted else None

    return wait_for(
        settled, timeout, f"slot {slot} of {dataset} to be {'/'.join(wanted)}", interval=0.3, ignore=UNREACHABLE
    )


def tallies(fed: Federation, dataset: str, slot: str) -> list[Any]:
    return [c for c in fed.ground_truth_log(dataset) if c.trailers.get("Mao-Slot") == slot]


def maoctl(node: Node, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, ROOT_MAOCTL, *args],
        env={**node.env(), "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ------------------------------------------------------------------------ the cases


def test_three_agree_make_one_tally_commit(fed: Federation) -> None:
    slot = "2026-11-28T01:00:00Z"
    name = voting(fed, "agree", "echo same")
    runs = run_slot(fed, name, slot)
    for record in runs.values():
        step = record["steps"][0]
        assert record["slot"] == slot and step["merge_commit"] is None, record
        assert step["details"]["ballot"]["late"] is False, step

    entry = outcome(fed.first, name, slot, "agreed")
    (tally,) = tallies(fed, name, slot)
    assert tally.trailers["Mao-Vote-For"] == ALL, tally.trailers
    assert tally.trailers["Mao-Vote-Against"] == "none" and tally.trailers["Mao-Vote-Missing"] == "none"
    assert tally.trailers["Mao-Pipeline"] == name and tally.trailers["Mao-Step"] == f"{name}-s"
    assert entry["commit"] == tally.sha and entry["for"] == ALL.split(",") and entry["dissenters"] == []
    assert fed.files(name) == {"out.txt": "same\n"}
    # node commits are pushed but never merged into ground-truth
    assert not [c for c in fed.ground_truth_log(name) if "Mao-Run" in c.trailers]
    for record in runs.values():
        assert not fed.reachable(name, record["steps"][0]["output_commit"])
    # every instance sees the same outcome
    assert {n.name: outcome(n, name, slot, "agreed")["commit"] for n in fed.nodes} == dict.fromkeys(
        [n.name for n in fed.nodes], tally.sha
    )


def test_two_against_one_majority_wins_and_the_dissenter_is_named(fed: Federation) -> None:
    slot, after = "2026-11-28T02:00:00Z", "2026-11-28T02:05:00Z"
    name = voting(
        fed,
        "majority",
        f'if [ "$MAO_INSTANCE" = node-b ] && [ "$MAO_SLOT" = {slot} ]; then echo odd; else echo "same $MAO_SLOT"; fi',
    )
    runs = run_slot(fed, name, slot)
    assert len({r["steps"][0]["details"]["ballot"]["output_id"] for r in runs.values()}) == 2

    outcome(fed.first, name, slot, "agreed")
    assert fed.files(name) == {"out.txt": f"same {slot}\n"}
    (tally,) = tallies(fed, name, slot)
    assert tally.trailers["Mao-Vote-For"] == "node-a,node-c", tally.trailers
    assert tally.trailers["Mao-Vote-Against"] == "node-b"
    assert tally.trailers["Mao-Vote-Commit"] in (
        runs["node-a"]["steps"][0]["output_commit"],
        runs["node-c"]["steps"][0]["output_commit"],
    )

    shown = maoctl(fed.nodes[2], "dataset", "votes", name, "--slot", slot, "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    (entry,) = json.loads(shown.stdout)["slots"]
    assert entry["outcome"] == "agreed" and entry["commit"] == tally.sha
    assert entry["for"] == ["node-a", "node-c"] and entry["dissenters"] == ["node-b"] and entry["missing"] == []
    assert entry["winner"] == runs["node-a"]["steps"][0]["details"]["ballot"]["output_id"]
    assert entry["ballots"]["node-b"]["output_id"] != entry["winner"]
    # the table names the dissenter too
    table = maoctl(fed.nodes[2], "dataset", "votes", name, "--slot", slot)
    assert table.returncode == 0 and "dissenter" in table.stdout and "node-b" in table.stdout, table.stdout

    # the next slot: the dissenter's node branch takes the agreed state in first, so the same
    # output is the same change on every instance again
    run_slot(fed, name, after)
    entry = outcome(fed.first, name, after, "agreed")
    assert entry["for"] == ALL.split(",") and entry["dissenters"] == [], entry
    (tally,) = tallies(fed, name, after)
    assert tally.parents == [tallies(fed, name, slot)[0].sha]
    assert fed.files(name) == {"out.txt": f"same {after}\n"}


def test_three_different_is_disputed_until_an_operator_resolves_it(fed: Federation) -> None:
    slot = "2026-11-28T03:00:00Z"
    name = voting(fed, "split", 'echo "$MAO_INSTANCE"')
    run_slot(fed, name, slot)
    entry = outcome(fed.first, name, slot, "disputed")
    assert entry["commit"] is None and entry["winner"] is None
    assert sorted(i for c in entry["candidates"] for i in c["instances"]) == ALL.split(",")
    assert fed.ground_truth_log(name) == []  # ground-truth left alone: it does not even exist yet

    bad = maoctl(fed.first, "dataset", "resolve", name, "--slot", slot, "--pick", "node-z")
    assert bad.returncode != 0 and "node-z" in bad.stdout + bad.stderr
    assert tallies(fed, name, slot) == []

    resolved = maoctl(fed.first, "dataset", "resolve", name, "--slot", slot, "--pick", "node-c", "--json")
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    (tally,) = tallies(fed, name, slot)
    assert json.loads(resolved.stdout)["commit"] == tally.sha
    assert tally.trailers["Mao-Resolved-By"] == "node-a" and tally.trailers["Mao-Vote-For"] == "node-c"
    assert tally.trailers["Mao-Vote-Against"] == "node-a,node-b"
    assert fed.files(name) == {"out.txt": "node-c\n"}
    entry = outcome(fed.nodes[1], name, slot, "resolved")
    assert entry["commit"] == tally.sha and entry["resolved_by"] == "node-a"

    again = maoctl(fed.first, "dataset", "resolve", name, "--slot", slot, "--pick", "node-b")
    assert again.returncode != 0 and len(tallies(fed, name, slot)) == 1


def test_one_tally_commit_per_slot_and_the_next_slot_on_top(fed: Federation) -> None:
    name = voting(fed, "series", 'echo "$MAO_SLOT"')
    first, second = "2026-11-28T04:00:00Z", "2026-11-28T04:05:00Z"
    run_slot(fed, name, first)
    outcome(fed.first, name, first, "agreed")
    run_slot(fed, name, second)
    outcome(fed.first, name, second, "agreed")

    (one,) = tallies(fed, name, first)
    (two,) = tallies(fed, name, second)
    assert two.parents == [one.sha]  # the next tally sits on top of the first
    assert fed.ground_truth_log(name)[0].sha == two.sha
    assert fed.files(name) == {"out.txt": f"{second}\n"}
    assert fed.files(name, one.sha) == {"out.txt": f"{first}\n"}
    for tally in (one, two):
        assert tally.trailers["Mao-Vote-For"] == ALL
    assert [e["slot"] for e in fed.nodes[1].votes(name)["slots"]] == [first, second]


def test_cut_off_instance_defers_its_ballot_counted_if_open_late_otherwise(fed: Federation) -> None:
    a, b, c = fed.nodes
    slot = "2026-11-28T05:00:00Z"
    open_ = voting(fed, "still-open", "echo same", deadline=600)
    late = voting(fed, "too-late", "echo same", deadline=8)
    # a and b vote while c is alive: c is an elector of both slots and the only one missing
    run_slot(fed, late, slot, [a, b])
    run_slot(fed, open_, slot, [a, b])
    for pipeline in (open_, late):
        entry = outcome(a, pipeline, slot, ("open", "agreed"))
        assert entry["electorate"] == ALL.split(",") and entry["ballots"]["node-c"] is None, entry

    c.cut_off()
    try:
        deferred = {p: c.wait_run(c.run(p, slot), timeout=90) for p in (open_, late)}
        for record in deferred.values():
            assert record["status"] == "succeeded", (record, c.logs(record["id"]))
            step = record["steps"][0]
            assert step["details"]["federation"] == "pending", step
            assert step["pushed"] is True and "ballot" not in step["details"]

        # the short deadline passes: a and b agree without c; the long one waits for c
        gone = outcome(a, late, slot, "agreed", timeout=40)
        assert gone["for"] == ["node-a", "node-b"] and gone["missing"] == ["node-c"]
        (tally,) = tallies(fed, late, slot)
        assert tally.trailers["Mao-Vote-Missing"] == "node-c"
        waiting = outcome(a, open_, slot, "open")
        assert waiting["ballots"]["node-c"] is None and waiting["missing"] == ["node-c"]
        assert tallies(fed, open_, slot) == []
    finally:
        c.reconnect()

    for pipeline, record in deferred.items():
        wait_for(
            lambda r=record: c.run_record(r["id"])["steps"][0]["details"].get("federation") == "done",
            45,
            f"c's deferred ballot for {pipeline} to be cast",
            ignore=UNREACHABLE,
        )

    counted = outcome(a, open_, slot, "agreed")
    assert counted["for"] == ALL.split(",") and counted["missing"] == []
    assert counted["ballots"]["node-c"]["late"] is False
    (tally,) = tallies(fed, open_, slot)
    assert tally.trailers["Mao-Vote-For"] == ALL

    recorded = outcome(a, late, slot, "agreed")
    assert recorded["ballots"]["node-c"]["late"] is True  # recorded, not counted
    assert recorded["for"] == ["node-a", "node-b"] and recorded["missing"] == ["node-c"]
    assert len(tallies(fed, late, slot)) == 1
    assert any("late" in line for line in c.logs(deferred[late]["id"]))
    # the replayed ballots are in c's runs as well
    assert c.run_record(deferred[late]["id"])["steps"][0]["details"]["ballot"]["late"] is True
    assert c.run_record(deferred[open_]["id"])["steps"][0]["details"]["ballot"]["late"] is False
