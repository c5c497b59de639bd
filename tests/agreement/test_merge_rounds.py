"""Policy ``merge``: several instances writing the same file all reach ground-truth, round after round."""

from __future__ import annotations

import threading

from agreement_kit import git, is_ancestor, trailers

from mao.datasets.groundtruth import GroundTruth

NAMES = ("alpha", "beta", "gamma")


def test_same_file_every_round_every_instance_merges(federation, register, remote):
    instances = [federation(name) for name in NAMES]
    for inst in instances:
        register(inst)
    node_commits: list[str] = []
    for round_no in range(4):
        slot = f"2026-11-28T1{round_no}:00:00Z"
        for inst in instances:
            run = inst.store.get_run(inst.runner.run_sync("collect", slot=slot))
            assert run.status == "succeeded", (inst.name, round_no, run.error)
            assert run.slot == slot
            step = run.steps[0]
            assert step.output_commit and step.merge_commit
            node_commits.append(step.output_commit)
            assert trailers(remote, step.output_commit)["Mao-Slot"] == slot

    assert len(node_commits) == 12
    for commit in node_commits:
        assert is_ancestor(remote, commit, "ground-truth"), commit
    rows = git(remote, "show", "ground-truth:metrics.csv").splitlines()
    assert len(rows) == 12
    assert {row.split(",")[0] for row in rows} == set(NAMES)
    # ground-truth's history shows each instance's contribution with its trailers
    merged_by = git(remote, "log", "--first-parent", "--format=%(trailers:key=Mao-Instance,valueonly)", "ground-truth")
    assert sorted(set(merged_by.split())) == sorted(NAMES)


def test_concurrent_identical_writes_all_merge(federation, register, remote):
    """Three instances writing the same content at once from the same agreed state merge cleanly."""

    def same(spec, on_log) -> int:
        (spec.output_dir / "metrics.csv").write_text("repo,stars\nmao,42\n")
        return 0

    instances = [federation(name, tool=same) for name in NAMES]
    for inst in instances:
        register(inst)
    run_ids: dict[str, int] = {}
    threads = [
        threading.Thread(target=lambda i=i: run_ids.__setitem__(i.name, i.runner.run_sync("collect")))
        for i in instances
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for inst in instances:
        run = inst.store.get_run(run_ids[inst.name])
        assert run.status == "succeeded", run.error
        assert is_ancestor(remote, run.steps[0].output_commit, "ground-truth")
    assert git(remote, "show", "ground-truth:metrics.csv") == "repo,stars\nmao,42\n"


def test_merge_retries_when_ground_truth_moved_meanwhile(federation, register, remote, monkeypatch):
    """A push of ground-truth refused because someone else pushed first is retried from a fresh fetch."""
    alpha, beta = federation("alpha"), federation("beta")
    register(alpha)
    register(beta)
    assert alpha.store.get_run(alpha.runner.run_sync("collect")).status == "succeeded"

    original = GroundTruth.push_merge
    raced = []

    def push_merge(self, clone, node_ref, merged):
        if merged is not None and not raced:
            raced.append(True)
            # alpha pushes ground-truth between beta's fetch and beta's push (no lock: an outside writer)
            manager = alpha.datasets
            worktree = manager.prepare_output("metrics", str(remote), "gather-alpha")
            (worktree / "other.txt").write_text("pushed meanwhile\n")
            manager.commit_output(worktree, "meanwhile", {})
            manager.push("metrics", "gather-alpha")
            manager.merge_to_ground_truth("metrics", "gather-alpha", "Merge meanwhile", {})
        return original(self, clone, node_ref, merged)

    monkeypatch.setattr(GroundTruth, "push_merge", push_merge)
    run = beta.store.get_run(beta.runner.run_sync("collect"))
    assert raced
    assert run.status == "succeeded", run.error
    assert is_ancestor(remote, run.steps[0].output_commit, "ground-truth")
    assert git(remote, "show", "ground-truth:other.txt") == "pushed meanwhile\n"


def with_header(spec, on_log) -> int:
    """A collector that creates metrics.csv with a header, then appends its row."""
    path = spec.output_dir / "metrics.csv"
    if not path.exists():
        path.write_text("instance,run,slot\n")
    with path.open("a") as fh:
        fh.write(f"{spec.env['MAO_INSTANCE']},{spec.env['MAO_RUN_ID']},{spec.env['MAO_SLOT']}\n")
    return 0


def test_concurrent_rounds_of_appended_rows_all_merge(federation, register, remote):
    """Every round, three instances append their row to the same file at once: rows both
    sides only appended are kept, so every run succeeds and nothing is lost."""
    instances = [federation(name, tool=with_header) for name in NAMES]
    for inst in instances:
        register(inst)
    node_commits = []
    for round_no in range(3):
        slot = f"2026-11-28T1{round_no}:00:00Z"
        run_ids: dict[str, int] = {}

        def run(inst, slot=slot, run_ids=run_ids):
            run_ids[inst.name] = inst.runner.run_sync("collect", slot=slot)

        threads = [threading.Thread(target=run, args=(i,)) for i in instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for inst in instances:
            run = inst.store.get_run(run_ids[inst.name])
            assert run.status == "succeeded", (round_no, inst.name, run.error)
            node_commits.append(run.steps[0].output_commit)
    for commit in node_commits:
        assert is_ancestor(remote, commit, "ground-truth")
    lines = git(remote, "show", "ground-truth:metrics.csv").splitlines()
    assert lines[0] == "instance,run,slot" and len(lines) == 10
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted(NAMES * 3)
    messages = git(remote, "log", "--format=%B", "ground-truth")
    assert "Conflicts" not in messages
