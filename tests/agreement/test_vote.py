"""Policy ``vote``: ballots in etcd, one tally commit per slot, disputes and their resolution."""

from __future__ import annotations

import threading

import pytest
from agreement_kit import git, trailers, write_snapshot

from mao.agreement.ballots import BallotBox, SlotRef
from mao.errors import Conflict, InvalidInput
from mao.events import VoteDisputed
from mao.registry.keys import schedule_key

SLOT = "2026-11-28T12:00:00Z"
NAMES = ("alpha", "beta", "gamma")


def differs_for(*odd: str):
    """A collector whose output differs on the ``odd`` instances (each its own value)."""

    def tool(spec, on_log) -> int:
        me = spec.env["MAO_INSTANCE"]
        value = f"odd-{me}" if me in odd else "42"
        (spec.output_dir / "snapshot.csv").write_text(f"slot,{spec.env['MAO_SLOT']}\nvalue,{value}\n")
        return 0

    return tool


def voting(federation, register, names=NAMES, tool=write_snapshot, deadline=600):
    instances = [federation(name, tool=tool) for name in names]
    for inst in instances:
        register(inst, policy="vote", deadline=deadline)
    return instances


def run_slot(inst, slot=SLOT):
    run = inst.store.get_run(inst.runner.run_sync("collect", slot=slot))
    assert run.status == "succeeded", (inst.name, run.error)
    return run


def tally_commits(remote) -> list[str]:
    if "ground-truth" not in git(remote, "branch", "--format=%(refname:short)").split():
        return []
    out = git(remote, "log", "--format=%H %(trailers:key=Mao-Vote-For,valueonly,separator=)", "ground-truth")
    return [line.split()[0] for line in out.splitlines() if len(line.split()) > 1]


def ref(slot=SLOT) -> SlotRef:
    return SlotRef("metrics", "collect", "gather", slot)


def test_three_agree(federation, register, remote):
    instances = voting(federation, register)
    runs = [run_slot(inst) for inst in instances[:2]]
    # two of three voted: nothing is written to ground-truth yet, node commits are not merged
    assert "ground-truth" not in git(remote, "branch", "--format=%(refname:short)").split()
    assert all(r.steps[0].merge_commit is None for r in runs)
    run_slot(instances[2])

    assert len(tally_commits(remote)) == 1
    t = trailers(remote, "ground-truth")
    assert t["Mao-Slot"] == SLOT and t["Mao-Pipeline"] == "collect" and t["Mao-Step"] == "gather"
    assert t["Mao-Vote-For"] == "alpha,beta,gamma"
    assert t["Mao-Vote-Against"] == "none" and t["Mao-Vote-Missing"] == "none"
    assert git(remote, "show", "ground-truth:snapshot.csv") == f"slot,{SLOT}\nvalue,42\n"
    view = instances[0].tallier.votes("metrics", SLOT)["slots"]
    assert len(view) == 1 and view[0]["outcome"] == "agreed" and view[0]["dissenters"] == []
    assert set(view[0]["ballots"]) == set(NAMES)


def test_two_against_one(federation, register, remote):
    instances = voting(federation, register, tool=differs_for("gamma"))
    for inst in instances:
        run_slot(inst)
    assert len(tally_commits(remote)) == 1
    assert git(remote, "show", "ground-truth:snapshot.csv") == f"slot,{SLOT}\nvalue,42\n"
    t = trailers(remote, "ground-truth")
    assert t["Mao-Vote-For"] == "alpha,beta" and t["Mao-Vote-Against"] == "gamma"
    slot = instances[0].tallier.votes("metrics")["slots"][0]
    assert (
        slot["outcome"] == "agreed"
        and slot["dissenters"] == ["gamma"]
        and slot["commit"] == git(remote, "rev-parse", "ground-truth").strip()
    )
    assert slot["ballots"]["gamma"]["output_id"] != slot["winner"] == slot["ballots"]["alpha"]["output_id"]

    # the next slot: the dissenter takes the agreed state in and agrees again
    second = "2026-11-28T13:00:00Z"
    for inst in instances:
        inst.executor.tools["img/collect"] = write_snapshot
        run_slot(inst, second)
    assert len(tally_commits(remote)) == 2
    assert trailers(remote, "ground-truth")["Mao-Vote-For"] == "alpha,beta,gamma"


def test_three_different_is_disputed_then_resolved(federation, register, remote):
    instances = voting(federation, register, tool=differs_for(*NAMES))
    disputes: list[dict] = []
    for inst in instances:
        inst.events.subscribe(lambda event: disputes.append(event.payload()), VoteDisputed)
    for inst in instances:
        run_slot(inst)
    assert tally_commits(remote) == []  # ground-truth unchanged
    assert disputes == [{"dataset": "metrics", "slot": SLOT}]  # published once, by the tallier
    tallier = instances[0].tallier
    slot = tallier.votes("metrics", SLOT)["slots"][0]
    assert slot["outcome"] == "disputed"
    assert sorted(i for c in slot["candidates"] for i in c["instances"]) == list(NAMES)

    with pytest.raises(InvalidInput, match="pick one of"):
        tallier.resolve("metrics", SLOT, "delta")
    record = tallier.resolve("metrics", SLOT, "beta")
    assert record["outcome"] == "resolved"
    assert git(remote, "show", "ground-truth:snapshot.csv") == f"slot,{SLOT}\nvalue,odd-beta\n"
    t = trailers(remote, "ground-truth")
    assert t["Mao-Resolved-By"] == "alpha" and t["Mao-Vote-For"] == "beta"
    assert t["Mao-Vote-Against"] == "alpha,gamma"
    assert tallier.votes("metrics", SLOT)["slots"][0]["outcome"] == "resolved"
    with pytest.raises(Conflict):
        tallier.resolve("metrics", SLOT, "gamma")
    assert len(tally_commits(remote)) == 1


def test_a_single_instance_is_its_own_majority(federation, register, remote):
    (alpha,) = voting(federation, register, names=("alpha",))
    run_slot(alpha)
    t = trailers(remote, "ground-truth")
    assert t["Mao-Vote-For"] == "alpha" and t["Mao-Vote-Missing"] == "none"


def test_deadline_tallies_without_the_missing_elector(federation, register, remote):
    instances = voting(federation, register, deadline=30)
    run_slot(instances[0])
    run_slot(instances[1])
    tallier = instances[0].tallier
    assert tallier.due() == []  # gamma may still vote
    electorate = BallotBox(instances[0].registry).electorate(ref())
    [outcome] = tallier.due(now=electorate["deadline"] + 1)
    assert outcome["outcome"] == "agreed" and outcome["missing"] == ["gamma"]
    assert trailers(remote, "ground-truth")["Mao-Vote-Missing"] == "gamma"
    # gamma's ballot arrives late: recorded as such, no second tally
    run_slot(instances[2])
    assert BallotBox(instances[0].registry).ballots(ref())["gamma"]["late"] is True
    assert len(tally_commits(remote)) == 1


def test_concurrent_talliers_write_one_commit(federation, register, remote):
    instances = voting(federation, register)
    federation("delta")  # live and electing: the slot waits for it
    for inst in instances:
        run_slot(inst)
    assert tally_commits(remote) == []
    results, errors = [], []

    def tally(inst):
        try:
            results.append(inst.tallier.tally(ref()))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tally, args=(inst,)) for inst in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len(tally_commits(remote)) == 1
    assert {r["commit"] for r in results} == {tally_commits(remote)[0]}


def test_a_tallier_killed_after_pushing_does_not_tally_twice(federation, register, remote, monkeypatch):
    instances = voting(federation, register)
    federation("delta")
    for inst in instances:
        run_slot(inst)

    class Killed(BaseException):
        pass

    real_record = BallotBox.record

    def die(self, slot_ref, outcome):
        raise Killed()

    monkeypatch.setattr(BallotBox, "record", die)
    with pytest.raises(Killed):
        instances[0].tallier.tally(ref())
    monkeypatch.setattr(BallotBox, "record", real_record)
    assert len(tally_commits(remote)) == 1
    assert BallotBox(instances[1].registry).outcome(ref()) is None  # etcd never heard of it

    again = instances[1].tallier.tally(ref())
    assert len(tally_commits(remote)) == 1
    assert again["commit"] == tally_commits(remote)[0] and again["outcome"] == "agreed"
    assert BallotBox(instances[2].registry).outcome(ref())["commit"] == again["commit"]  # index rebuilt


def test_electorate_is_fixed_when_the_slot_opens(federation, register, remote):
    alpha, beta = voting(federation, register, names=("alpha", "beta"))
    for name, cron in (("alpha", "0 * * * *"), ("beta", "0 * * * *"), ("gamma", "30 * * * *")):
        alpha.registry.put(schedule_key("collect", name), {"cron": cron, "timezone": "UTC", "instance": name})
    federation("gamma")  # live, but on another cron: not an elector
    run_slot(alpha)
    electorate = BallotBox(alpha.registry).electorate(ref())
    assert electorate["electors"] == ["alpha", "beta"]

    late_joiner = federation("delta", tool=differs_for("delta"))  # joins mid-slot
    alpha.registry.put(schedule_key("collect", "delta"), {"cron": "0 * * * *", "timezone": "UTC", "instance": "delta"})
    register(late_joiner, policy="vote")
    run_slot(late_joiner)
    assert tally_commits(remote) == []  # beta is still awaited; delta's ballot does not count
    run_slot(beta)
    t = trailers(remote, "ground-truth")
    assert t["Mao-Vote-For"] == "alpha,beta" and t["Mao-Vote-Against"] == "none"
    assert BallotBox(alpha.registry).electorate(ref(slot="2026-11-28T13:00:00Z")) is None
    run_slot(alpha, "2026-11-28T13:00:00Z")  # the next slot's electorate has delta
    assert BallotBox(alpha.registry).electorate(ref(slot="2026-11-28T13:00:00Z"))["electors"] == [
        "alpha",
        "beta",
        "delta",
    ]


def test_three_running_the_slot_at_once(federation, register, remote):
    instances = voting(federation, register, tool=differs_for("gamma"))
    threads = [threading.Thread(target=run_slot, args=(inst,)) for inst in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(tally_commits(remote)) == 1
    t = trailers(remote, "ground-truth")
    assert t["Mao-Vote-For"] == "alpha,beta" and t["Mao-Vote-Against"] == "gamma"
    assert git(remote, "show", "ground-truth:snapshot.csv") == f"slot,{SLOT}\nvalue,42\n"


def test_the_registry_index_is_rebuilt_from_tally_commits(federation, register, remote):
    instances = voting(federation, register, tool=differs_for("gamma"))
    for inst in instances:
        run_slot(inst)
    registry = instances[0].registry
    for prefix in ("tallies/", "electorates/", "ballots/"):
        for key in registry.list(prefix):
            registry.delete(prefix + key)
    [slot] = instances[1].tallier.votes("metrics")["slots"]
    assert slot["outcome"] == "agreed" and slot["dissenters"] == ["gamma"]
    assert slot["electorate"] == list(NAMES)
    assert slot["commit"] == git(remote, "rev-parse", "ground-truth").strip()


def _tallier(tmp_path, etcd_cluster, etcd_prefix, name, *extra):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("tally_process.py")
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(tmp_path / f"proc-{name}"),
            name,
            ",".join(etcd_cluster.endpoints),
            etcd_prefix,
            SLOT,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        start_new_session=True,
    )


def test_tallier_processes_at_once_write_one_commit(federation, register, remote, tmp_path, etcd_cluster, etcd_prefix):
    instances = voting(federation, register, tool=differs_for("gamma"))
    federation("delta")
    for inst in instances:
        run_slot(inst)
    # talliers of the slot's electors (each a process with a key of its own): a tally is an elector's
    procs = [_tallier(tmp_path, etcd_cluster, etcd_prefix, name) for name in NAMES]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    assert len(tally_commits(remote)) == 1
    import json

    assert {json.loads(out)["commit"] for out, _ in outputs} == {tally_commits(remote)[0]}


def test_a_tallier_process_sigkilled_after_pushing_does_not_tally_twice(
    federation, register, remote, tmp_path, etcd_cluster, etcd_prefix
):
    instances = voting(federation, register)
    federation("delta")
    for inst in instances:
        run_slot(inst)
    killed = _tallier(tmp_path, etcd_cluster, etcd_prefix, "alpha", "die")
    _, err = killed.communicate(timeout=180)
    assert killed.returncode == -9, err[-2000:]
    assert len(tally_commits(remote)) == 1
    assert BallotBox(instances[0].registry).outcome(ref()) is None
    # the killed holder's lock lapses with its lease; the next tallier finds the commit
    again = instances[1].tallier.tally(ref())
    assert len(tally_commits(remote)) == 1
    assert again["commit"] == tally_commits(remote)[0]
    assert BallotBox(instances[0].registry).outcome(ref())["commit"] == again["commit"]


def test_a_rerun_after_the_tally_keeps_the_counted_ballot(federation, register, remote):
    (alpha,) = voting(federation, register, names=("alpha",))
    run_slot(alpha)
    counted = BallotBox(alpha.registry).ballots(ref())["alpha"]
    alpha.executor.tools["img/collect"] = differs_for("alpha")
    rerun = run_slot(alpha)
    assert rerun.steps[0].details["ballot"]["late"] is True
    assert BallotBox(alpha.registry).ballots(ref())["alpha"] == counted
    assert len(tally_commits(remote)) == 1
