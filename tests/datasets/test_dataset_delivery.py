"""Delivering a step's commit with few git processes: trailers written in the message, the
node branch and its merge pushed together, a stale view of ground-truth merged again."""

from __future__ import annotations

from pathlib import Path

import pytest

from mao.datasets import DatasetManager
from mao.datasets.groundtruth import MergeSource
from mao.datasets.trailers import format_message
from mao.errors import GitError, InvalidInput


def test_trailers_are_written_in_the_message() -> None:
    assert format_message("Output of run 3", {"Mao-Run": "3", "Mao-Step": "s"}) == (
        "Output of run 3\n\nMao-Run: 3\nMao-Step: s\n"
    )
    # an existing trailer block is extended, as git interpret-trailers does
    assert format_message("Subject\n\nSigned-off-by: a <a@b>", {"Mao-Run": "1"}) == (
        "Subject\n\nSigned-off-by: a <a@b>\nMao-Run: 1\n"
    )
    assert format_message("  Subject  \n", {}) == "Subject\n"
    with pytest.raises(InvalidInput, match="trailer name"):
        format_message("s", {"Bad Key": "x"})
    with pytest.raises(InvalidInput, match="single line"):
        format_message("s", {"Mao-Run": "1\n2"})
    with pytest.raises(InvalidInput, match="commit message"):
        format_message(" ", {})


def _step(manager: DatasetManager, remote: Path, branch: str, files: dict[str, str], run: int) -> str:
    """What a run does: prepare (the one fetch), write, commit; nothing pushed yet."""
    worktree = manager.prepare_output("ds", str(remote), branch)
    for rel, text in files.items():
        with (worktree / rel).open("a") as fh:
            fh.write(text)
    sha = manager.commit_output(worktree, f"Output of run {run}", {"Mao-Run": str(run)})
    assert sha is not None
    return sha


def test_node_branch_and_merge_go_in_one_push(manager: DatasetManager, remote: Path, inspect, trailers_of) -> None:
    first = _step(manager, remote, "step-a", {"rows.csv": "a1\n"}, 1)
    merged = manager.merge_to_ground_truth(
        "ds", "step-a", "Merge 1", {"Mao-Run": "1"}, MergeSource(first, fetched=True)
    )
    assert inspect.rev(remote, "step-a") == first
    assert inspect.rev(remote, "ground-truth") == merged
    assert inspect.parents(remote, merged)[1] == first

    before = manager.git.by_subcommand["push"]
    second = _step(manager, remote, "step-a", {"rows.csv": "a2\n"}, 2)
    merged2 = manager.merge_to_ground_truth(
        "ds", "step-a", "Merge 2", {"Mao-Run": "2"}, MergeSource(second, fetched=True)
    )
    assert manager.git.by_subcommand["push"] - before == 1
    assert inspect.rev(remote, "step-a") == second
    assert inspect.parents(remote, merged2) == [merged, second]
    assert inspect.file(remote, "ground-truth", "rows.csv") == "a1\na2\n"
    assert trailers_of(manager, remote, merged2) == {"Mao-Run": "2"}
    assert manager.pending_pushes("ds") == []


def test_a_stale_ground_truth_is_fetched_and_merged_again(
    manager: DatasetManager, other: DatasetManager, remote: Path, inspect
) -> None:
    mine = _step(manager, remote, "step-a", {"rows.csv": "a\n"}, 1)
    # meanwhile another instance merges its rows: this clone's view of ground-truth is stale
    theirs = _step(other, remote, "step-b", {"rows.csv": "b\n"}, 1)
    their_merge = other.merge_to_ground_truth("ds", "step-b", "Merge b", {}, MergeSource(theirs, fetched=True))

    merged = manager.merge_to_ground_truth("ds", "step-a", "Merge a", {}, MergeSource(mine, fetched=True))
    assert inspect.parents(remote, merged) == [their_merge, mine]
    assert inspect.file(remote, "ground-truth", "rows.csv") == "b\na\n"  # both rows, ground-truth's first
    assert inspect.rev(remote, "step-a") == mine


def test_a_refused_push_sends_neither_ref_and_the_next_merge_sends_both(
    manager: DatasetManager, remote: Path, inspect
) -> None:
    first = _step(manager, remote, "step-a", {"rows.csv": "1\n"}, 1)
    merged = manager.merge_to_ground_truth("ds", "step-a", "Merge 1", {}, MergeSource(first, fetched=True))
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'remote is read-only' >&2\nexit 1\n")
    hook.chmod(0o755)

    second = _step(manager, remote, "step-a", {"rows.csv": "2\n"}, 2)
    with pytest.raises(GitError, match="could not push"):
        manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {}, MergeSource(second, fetched=True))
    assert inspect.rev(remote, "step-a") == first and inspect.rev(remote, "ground-truth") == merged
    assert manager.pending_pushes("ds") == ["step-a"]  # the commit is kept

    hook.unlink()
    third = _step(manager, remote, "step-a", {"rows.csv": "3\n"}, 3)  # builds on the unpushed commit
    assert inspect.parents(manager.clone_path("ds"), third) == [second]
    manager.merge_to_ground_truth("ds", "step-a", "Merge 3", {}, MergeSource(third, fetched=True))
    assert inspect.file(remote, "ground-truth", "rows.csv") == "1\n2\n3\n"
    assert manager.pending_pushes("ds") == []


def test_a_step_that_changed_nothing_adds_no_merge(manager: DatasetManager, remote: Path, inspect) -> None:
    first = _step(manager, remote, "step-a", {"rows.csv": "1\n"}, 1)
    merged = manager.merge_to_ground_truth("ds", "step-a", "Merge 1", {}, MergeSource(first, fetched=True))
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    assert manager.commit_output(worktree, "Output of run 2", {"Mao-Run": "2"}) is None
    assert manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {}, MergeSource(fetched=True)) == merged
    assert inspect.rev(remote, "ground-truth") == merged


def test_housekeeping_runs_once_every_so_many_commits(manager: DatasetManager, remote: Path, inspect) -> None:
    from mao.datasets.publish import HOUSEKEEPING_EVERY

    for run in range(1, HOUSEKEEPING_EVERY * 2 + 1):
        _step(manager, remote, "step-a", {"rows.csv": f"{run}\n"}, run)
    assert manager.git.by_subcommand["maintenance"] == 2
    # and git did not run it after each fetch and commit itself (its own trace says so)
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "rows.csv").write_text("last\n")
    manager.git._env["GIT_TRACE"] = str(manager.base_dir.parent / "trace.log")
    try:
        manager.commit_output(worktree, "Output", {})
        manager.ensure_clone("ds", str(remote))
    finally:
        del manager.git._env["GIT_TRACE"]
    trace = (manager.base_dir.parent / "trace.log").read_text()
    assert "upload-pack" in trace  # the fetch was traced
    assert "maintenance run" not in trace
