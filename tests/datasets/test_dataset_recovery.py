"""Failed pushes, unpushed commits, diverged branches and recovery after a crash."""

from __future__ import annotations

import time
from pathlib import Path

from mao.datasets import DatasetManager


def test_unreachable_remote_keeps_the_commit_until_it_can_be_pushed(make_manager, remote: Path, inspect) -> None:
    manager = make_manager("a", push_retries=2, retry_delay=0.05)
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "a.txt").write_text("A\n")
    sha = manager.commit_output(worktree, "Output", {"Mao-Run": "1"})

    moved = remote.parent / "moved.git"
    remote.rename(moved)  # the server is gone
    started = time.monotonic()
    assert manager.push("ds", "step-a") is False
    assert time.monotonic() - started >= 0.05 + 0.1  # two retries with backoff
    assert manager.pending_pushes("ds") == ["step-a"]
    assert manager.head("ds", "step-a") == sha
    assert manager.push_pending("ds") == {"step-a": False}

    manager.ensure_clone("ds", str(moved))  # the remote's new address
    assert manager.push_pending("ds") == {"step-a": True}
    assert inspect.rev(moved, "step-a") == sha
    assert manager.pending_pushes("ds") == []
    assert manager.push_pending("ds") == {}


def test_prepare_output_keeps_local_commits_ahead_of_origin(
    manager: DatasetManager, remote: Path, write_output, inspect
) -> None:
    pushed = write_output(manager, str(remote), "step-a", {"a.txt": "1\n"})
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "a.txt").write_text("2\n")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    unpushed = manager.commit_output(worktree, "Run 2", {"Mao-Run": "2"})
    assert manager.push("ds", "step-a") is False
    hook.unlink()

    worktree = manager.prepare_output("ds", str(remote), "step-a")
    assert inspect.git("rev-parse", "HEAD", cwd=worktree).strip() == unpushed
    assert (worktree / "a.txt").read_text() == "2\n"
    assert inspect.rev(remote, "step-a") == pushed
    # the next run builds on top of it, and both commits reach the remote
    (worktree / "b.txt").write_text("3\n")
    third = manager.commit_output(worktree, "Run 3", {"Mao-Run": "3"})
    assert manager.push_pending("ds") == {"step-a": True}
    assert inspect.rev(remote, "step-a") == third
    assert inspect.parents(remote, third) == [unpushed]


def test_prepare_output_follows_origin_when_it_is_ahead(make_manager, remote: Path, write_output, inspect) -> None:
    first_home = make_manager("a")
    write_output(first_home, str(remote), "step-a", {"a.txt": "1\n"})
    # the same instance reinstalled elsewhere writes on; the old clone is behind
    second_home = make_manager("a2")
    newer = write_output(second_home, str(remote), "step-a", {"a.txt": "2\n"}, run=2)
    worktree = first_home.prepare_output("ds", str(remote), "step-a")
    assert inspect.git("rev-parse", "HEAD", cwd=worktree).strip() == newer
    assert (worktree / "a.txt").read_text() == "2\n"


def test_diverged_branch_keeps_both_sides(make_manager, remote: Path, write_output, inspect) -> None:
    here = make_manager("a")
    write_output(here, str(remote), "step-a", {"a.txt": "1\n"})
    worktree = here.prepare_output("ds", str(remote), "step-a")
    (worktree / "local.txt").write_text("local\n")
    local = here.commit_output(worktree, "Local", {})  # not pushed
    elsewhere = make_manager("a2")
    remote_side = write_output(elsewhere, str(remote), "step-a", {"remote.txt": "remote\n"}, run=2)

    worktree = here.prepare_output("ds", str(remote), "step-a")
    assert sorted(p.name for p in worktree.iterdir()) == [".git", "a.txt", "local.txt", "remote.txt"]
    head = inspect.git("rev-parse", "HEAD", cwd=worktree).strip()
    assert set(inspect.parents(worktree, head)) == {local, remote_side}
    assert here.push_pending("ds") == {"step-a": True}


def test_reset_worktrees_after_a_half_done_merge(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect
) -> None:
    write_output(manager, str(remote), "step-a", {"result.csv": "a\n"})
    write_output(other, str(remote), "step-b", {"result.csv": "b\n"})
    manager.merge_to_ground_truth("ds", "step-a", "Merge step-a", {})
    merged = manager.merge_to_ground_truth("ds", "step-b", "Merge step-b", {})
    # the ground-truth worktree a merge git cannot do without one is made in
    gt = manager.worktree_path("ds", "ground-truth")
    inspect.git("worktree", "add", "--quiet", "--detach", str(gt), merged, cwd=manager.clone_path("ds"))
    # a crash in the middle of a merge: conflict markers, MERGE_HEAD, a stale index.lock
    write_output(other, str(remote), "step-b", {"result.csv": "c\n"}, run=2)
    manager.ensure_clone("ds", str(remote))
    (gt / "result.csv").write_text("x\n")
    inspect.git("commit", "--quiet", "--all", "--message", "by hand", cwd=gt)
    merged = inspect.git("rev-parse", "HEAD", cwd=gt).strip()
    inspect.git("merge", "--no-edit", "origin/step-b", cwd=gt, check=False)
    admin = manager.clone_path("ds") / ".git" / "worktrees" / "ground-truth"
    assert (admin / "MERGE_HEAD").exists()
    (admin / "index.lock").write_text("")
    # and a step that died while writing its output
    node = manager.prepare_output("ds", str(remote), "step-a")
    (node / "partial.tmp").write_text("half")
    (node / "result.csv").write_text("half-written\n")

    reset = manager.reset_worktrees()
    assert sorted(reset) == sorted([gt, node])
    assert not (admin / "MERGE_HEAD").exists() and not (admin / "index.lock").exists()
    assert inspect.status(gt) == "" and inspect.status(node) == ""
    assert inspect.git("rev-parse", "HEAD", cwd=gt).strip() == merged
    assert (node / "result.csv").read_text() == "a\nb\n"

    write_output(manager, str(remote), "step-a", {"more.txt": "m\n"}, run=2)
    manager.merge_to_ground_truth("ds", "step-a", "Merge step-a", {})
    assert "more.txt" in inspect.files(remote, "ground-truth")


def test_reset_worktrees_of_one_branch_only(manager: DatasetManager, remote: Path, inspect) -> None:
    a = manager.prepare_output("ds", str(remote), "step-a")
    b = manager.prepare_output("ds", str(remote), "step-b")
    (a / "x").write_text("x")
    (b / "y").write_text("y")
    assert manager.reset_worktrees("ds", "step-a") == [a]
    assert not (a / "x").exists() and (b / "y").exists()
    assert manager.reset_worktrees("missing-ds") == []


def test_worktree_whose_dot_git_was_deleted_is_recovered(
    manager: DatasetManager, remote: Path, write_output, inspect
) -> None:
    write_output(manager, str(remote), "step-a", {"a.txt": "1\n"})
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / ".git").unlink()
    (worktree / "a.txt").write_text("2\n")
    sha = manager.commit_output(worktree, "Run 2", {})
    assert sha is not None and manager.push("ds", "step-a")
    assert inspect.file(remote, "step-a", "a.txt") == "2\n"
    (worktree / ".git").unlink()
    assert manager.prepare_output("ds", str(remote), "step-a") == worktree
    assert inspect.status(worktree) == ""


def test_worktree_survives_prune_while_its_dot_git_is_missing(manager: DatasetManager, remote: Path, inspect) -> None:
    a = manager.prepare_output("ds", str(remote), "step-a")
    (a / ".git").unlink()  # a tool emptying its output directory, dotfiles included
    (a / "a.txt").write_text("A\n")
    manager.prepare_output("ds", str(remote), "step-b")  # another pipeline, meanwhile
    inspect.git("worktree", "prune", cwd=manager.clone_path("ds"))  # as gc would
    sha = manager.commit_output(a, "Output", {})
    assert sha is not None and manager.push("ds", "step-a")
    assert inspect.file(remote, "step-a", "a.txt") == "A\n"


def test_worktree_directory_removed_by_hand_is_recreated(
    manager: DatasetManager, remote: Path, write_output, inspect
) -> None:
    import shutil

    sha = write_output(manager, str(remote), "step-a", {"a.txt": "1\n"})
    shutil.rmtree(manager.worktree_path("ds", "step-a"))
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    assert (worktree / "a.txt").read_text() == "1\n"
    assert inspect.git("rev-parse", "HEAD", cwd=worktree).strip() == sha
    assert inspect.status(worktree) == ""


def test_moved_base_directory_keeps_working(make_manager, remote: Path, write_output, inspect) -> None:
    from mao.datasets import DatasetManager

    manager = make_manager("a")
    write_output(manager, str(remote), "step-a", {"a.txt": "1\n"})
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "a.txt").write_text("2\n")
    unpushed = manager.commit_output(worktree, "Run 2", {})
    new_base = manager.base_dir.with_name("moved-datasets")
    manager.base_dir.rename(new_base)
    moved = DatasetManager(manager.git, new_base, manager.bare_dir, push_retries=0)
    worktree = moved.prepare_output("ds", str(remote), "step-a")
    assert inspect.git("rev-parse", "HEAD", cwd=worktree).strip() == unpushed
    assert moved.push_pending("ds") == {"step-a": True}


def test_lost_clone_is_recloned(manager: DatasetManager, remote: Path, write_output, inspect) -> None:
    import shutil

    sha = write_output(manager, str(remote), "step-a", {"a.txt": "1\n"})
    shutil.rmtree(manager.clone_path("ds") / ".git")
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    assert inspect.git("rev-parse", "HEAD", cwd=worktree).strip() == sha
    assert (worktree / "a.txt").read_text() == "1\n"
