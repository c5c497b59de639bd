"""Votes are visible and disputes settled through the API and ``maoctl``."""

from __future__ import annotations

import json

from agreement_kit import git, trailers
from served_kit import Served
from test_vote import NAMES, SLOT, differs_for


def test_vote_through_api_and_cli(federation, register, remote, maoctl):
    instances = [federation(name, tool=differs_for("gamma")) for name in NAMES]
    alpha = instances[0]
    with Served.api(instance=alpha, port=0) as server:

        def cli(*args):
            return maoctl("--url", server.url, *args)

        added = cli(
            "dataset",
            "add",
            "--name",
            "metrics",
            "--git-url",
            str(remote),
            "--policy",
            "vote",
            "--vote-deadline",
            "300",
        )
        assert added.code == 0, added.output
        shown = cli("dataset", "get", "--name", "metrics", "--json")
        assert json.loads(shown.out)["policy"] == "vote" and json.loads(shown.out)["vote_deadline"] == 300
        bad = cli("dataset", "add", "--name", "other", "--git-url", str(remote), "--policy", "majority")
        assert bad.code != 0 and "policy" in bad.output
        for inst in instances:
            register(inst)

        started = cli("pipeline", "run", "--name", "collect", "--slot", SLOT, "--wait")
        assert started.code == 0, started.output
        for inst in instances[1:]:
            assert inst.store.get_run(inst.runner.run_sync("collect", slot=SLOT)).status == "succeeded"
        run_id = alpha.store.list_runs("collect")[0].id
        shown = cli("runs", "show", str(run_id))
        assert shown.code == 0 and SLOT in shown.out
        assert SLOT in cli("runs", "list").out

        assert trailers(remote, "ground-truth")["Mao-Vote-Against"] == "gamma"
        table = cli("dataset", "votes", "metrics")
        assert table.code == 0, table.output
        assert "agreed" in table.out and "dissenter" in table.out and "gamma" in table.out
        data = json.loads(cli("dataset", "votes", "metrics", "--slot", SLOT, "--json").out)
        [slot] = data["slots"]
        assert data["dataset"] == "metrics"
        assert slot["outcome"] == "agreed" and slot["dissenters"] == ["gamma"]
        assert set(slot["ballots"]) == set(NAMES) and slot["electorate"] == sorted(NAMES)
        assert slot["commit"] == git(remote, "rev-parse", "ground-truth").strip()

        # a disputed slot, settled by the operator
        disputed = "2026-11-28T13:00:00Z"
        for inst in instances:
            inst.executor.tools["img/collect"] = differs_for(*NAMES)
            assert inst.store.get_run(inst.runner.run_sync("collect", slot=disputed)).status == "succeeded"
        data = json.loads(cli("dataset", "votes", "metrics", "--slot", disputed, "--json").out)
        assert data["slots"][0]["outcome"] == "disputed" and len(data["slots"][0]["candidates"]) == 3
        before = git(remote, "rev-parse", "ground-truth")

        import httpx

        wrong = httpx.post(f"{server.url}/datasets/metrics/resolve", json={"slot": SLOT, "pick": "alpha"})
        assert wrong.status_code == 409, wrong.text
        wrong = httpx.post(f"{server.url}/datasets/metrics/resolve", json={"slot": "soon", "pick": "alpha"})
        assert wrong.status_code == 400, wrong.text
        wrong = httpx.get(f"{server.url}/datasets/metrics/votes", params={"slot": "soon"})
        assert wrong.status_code == 400, wrong.text
        assert git(remote, "rev-parse", "ground-truth") == before

        done = cli("dataset", "resolve", "metrics", "--slot", disputed, "--pick", "gamma")
        assert done.code == 0, done.output
        t = trailers(remote, "ground-truth")
        assert t["Mao-Resolved-By"] == "alpha" and t["Mao-Vote-For"] == "gamma" and t["Mao-Slot"] == disputed
        assert "value,odd-gamma" in git(remote, "show", "ground-truth:snapshot.csv")
        data = json.loads(cli("dataset", "votes", "metrics", "--slot", disputed, "--json").out)
        assert data["slots"][0]["outcome"] == "resolved" and data["slots"][0]["resolved_by"] == "alpha"
