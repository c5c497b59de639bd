"""A suspect step casts no ballot: the slot's tally counts its instance as missing."""

from __future__ import annotations

import json

from agreement_kit import IMAGE, git, trailers

from mao.agreement.ballots import BallotBox, SlotRef
from mao.models import DatasetIn, PipelineIn, ToolIn

SLOT = "2026-11-28T12:00:00Z"
NAMES = ("alpha", "beta", "gamma")


def snapshot_with_metric(spec, on_log) -> int:
    """The same snapshot everywhere; gamma's metric is out of range."""
    (spec.output_dir / "snapshot.csv").write_text(f"slot,{spec.env['MAO_SLOT']}\nvalue,42\n")
    rows = 500 if spec.env["MAO_INSTANCE"] == "gamma" else 10
    (spec.output_dir / "mao-metrics.json").write_text(json.dumps({"rows": rows}))
    return 0


def test_a_suspect_snapshot_does_not_vote(federation, remote):
    instances = [federation(name, tool=snapshot_with_metric) for name in NAMES]
    for inst in instances:
        if "collector" not in inst.catalog.tools():
            inst.catalog.add_tool(ToolIn(name="collector", image=IMAGE))
        if "metrics" not in inst.catalog.datasets():
            inst.catalog.add_dataset(
                DatasetIn.model_validate({"name": "metrics", "body": {"master": str(remote), "policy": "vote"}})
            )
        step = {
            "name": "gather",
            "tool": "collector",
            "output_dataset": "metrics",
            "metrics": {"rows": {"range": {"max": 100}}},
        }
        inst.pipelines.init(PipelineIn.model_validate({"name": "collect", "steps": [step]}))

    gamma = instances[2]
    run = gamma.store.get_run(gamma.runner.run_sync("collect", slot=SLOT))
    assert run.status == "succeeded", run.error
    assert run.steps[0].suspect and run.steps[0].suspect_detail == "rows: 500 is above the maximum 100"
    assert "ballot" not in (run.steps[0].details or {})
    lines = [line.line for line in gamma.store.logs(run.id)]
    assert f"the step is suspect: no ballot cast for slot {SLOT} (counted as missing)" in lines
    # its commit is pushed all the same
    assert git(remote, "rev-parse", "gather-gamma").strip() == run.steps[0].output_commit

    ref = SlotRef("metrics", "collect", "gather", SLOT)
    box = BallotBox(gamma.registry)
    assert "gamma" not in box.ballots(ref)
    for inst in instances[:2]:
        done = inst.store.get_run(inst.runner.run_sync("collect", slot=SLOT))
        assert done.status == "succeeded" and not done.steps[0].suspect
    assert set(box.ballots(ref)) == {"alpha", "beta"}

    tallier = instances[0].tallier
    assert tallier.due() == []  # gamma is an elector that has not voted: wait for the deadline
    [outcome] = tallier.due(now=box.electorate(ref)["deadline"] + 1)
    assert outcome["outcome"] == "agreed" and outcome["missing"] == ["gamma"]
    t = trailers(remote, "ground-truth")
    assert t["Mao-Vote-For"] == "alpha,beta" and t["Mao-Vote-Missing"] == "gamma"
    assert git(remote, "show", "ground-truth:snapshot.csv") == f"slot,{SLOT}\nvalue,42\n"
    assert "mao-metrics.json" not in git(remote, "ls-tree", "--name-only", "ground-truth")
