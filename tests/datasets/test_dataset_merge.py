"""Merging node branches into ground-truth: first merge, clean merges, conflicts, push failures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mao.datasets import DatasetManager
from mao.errors import GitError, MergeConflict, NotFound


def test_first_merge_creates_ground_truth(
    manager: DatasetManager, remote: Path, write_output, inspect, trailers_of
) -> None:
    node = write_output(manager, str(remote), "step-a", {"a.txt": "A\n"})
    merged = manager.merge_to_ground_truth("ds", "step-a", "Merge step-a", {"Mao-Run": "7", "Mao-Instance": "a"})
    assert inspect.rev(remote, "ground-truth") == merged
    parents = inspect.parents(remote, merged)
    assert len(parents) == 2 and parents[1] == node
    assert inspect.file(remote, "ground-truth", "a.txt") == "A\n"
    assert trailers_of(manager, remote, merged) == {"Mao-Run": "7", "Mao-Instance": "a"}
    [entry] = manager.log("ds", str(remote), limit=1)
    assert entry["sha"] == merged and entry["subject"] == "Merge step-a"
    assert entry["trailers"]["Mao-Run"] == "7"
    assert manager.pending_pushes("ds") == []


def test_second_node_branch_merges_cleanly(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect
) -> None:
    write_output(manager, str(remote), "step-a", {"a.txt": "A\n"})
    write_output(other, str(remote), "step-b", {"b.txt": "B\n"})
    first = manager.merge_to_ground_truth("ds", "step-a", "Merge step-a", {})
    second = other.merge_to_ground_truth("ds", "step-b", "Merge step-b", {})
    assert inspect.parents(remote, second)[0] == first
    assert inspect.files(remote, "ground-truth") == ["a.txt", "b.txt"]
    assert inspect.branches(remote) == ["ground-truth", "step-a", "step-b"]


def test_merging_again_after_new_output(manager: DatasetManager, remote: Path, write_output, inspect) -> None:
    write_output(manager, str(remote), "step-a", {"a.txt": "1\n"})
    first = manager.merge_to_ground_truth("ds", "step-a", "Merge 1", {})
    # nothing new: ground-truth stays where it is
    assert manager.merge_to_ground_truth("ds", "step-a", "Merge again", {}) == first
    write_output(manager, str(remote), "step-a", {"a.txt": "2\n"}, run=2)
    second = manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {})
    assert inspect.parents(remote, second)[0] == first
    assert inspect.file(remote, "ground-truth", "a.txt") == "2\n"


def test_concurrent_changes_keep_the_newest_and_lose_nothing(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of
) -> None:
    """Two nodes changed one file differently since they last agreed: nobody is stopped. The
    later merge's version is ground-truth's, named in a Mao-Superseded trailer; the earlier
    version stays in ground-truth's history (its first parent) and both node commits are in it."""
    node_a = write_output(manager, str(remote), "step-a", {"result.json": '{"v": 1}', "only-a.txt": "A\n"})
    node_b = write_output(other, str(remote), "step-b", {"result.json": '{"v": 2}', "only-b.txt": "B\n"})
    merged_a = manager.merge_to_ground_truth("ds", "step-a", "Merge step-a", {})

    merged_b = other.merge_to_ground_truth("ds", "step-b", "Merge step-b", {"Mao-Run": "3"})
    assert inspect.rev(remote, "ground-truth") == merged_b
    assert inspect.parents(remote, merged_b) == [merged_a, node_b]
    assert inspect.file(remote, "ground-truth", "result.json") == '{"v": 2}'
    assert inspect.file(remote, "ground-truth", "only-a.txt") == "A\n"
    assert inspect.file(remote, "ground-truth", "only-b.txt") == "B\n"
    assert inspect.git("show", f"{merged_a}:result.json", cwd=remote) == '{"v": 1}'
    assert trailers_of(other, remote, merged_b) == {"Mao-Run": "3", "Mao-Superseded": "result.json"}
    assert inspect.rev(remote, "step-a") == node_a
    assert not other.worktree_path("ds", "ground-truth").exists()  # settled with no worktree
    assert other.pending_pushes("ds") == []


def test_a_node_deleting_what_ground_truth_changed_is_the_newest_change(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of
) -> None:
    write_output(manager, str(remote), "step-a", {"x.json": "1"})
    manager.merge_to_ground_truth("ds", "step-a", "Merge 1", {})
    write_output(manager, str(remote), "step-a", {"x.json": "2"}, run=2)
    worktree = other.prepare_output("ds", str(remote), "step-b")
    (worktree / "x.json").unlink()
    other.commit_output(worktree, "delete", {})
    assert other.push("ds", "step-b")
    manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {})
    merged = other.merge_to_ground_truth("ds", "step-b", "Merge 3", {})
    assert "x.json" not in inspect.git("ls-tree", "--name-only", merged, cwd=remote)
    assert trailers_of(other, remote, merged) == {"Mao-Superseded": "x.json"}


def test_unpushed_node_branch_is_merged_from_local(manager: DatasetManager, remote: Path, inspect) -> None:
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "a.txt").write_text("A\n")
    node = manager.commit_output(worktree, "Local only", {})
    merged = manager.merge_to_ground_truth("ds", "step-a", "Merge", {})
    assert inspect.parents(remote, merged)[1] == node


def test_unknown_node_branch(manager: DatasetManager, remote: Path) -> None:
    with pytest.raises(NotFound):
        manager.merge_to_ground_truth("ds", "step-a", "Merge", {})  # not even cloned
    manager.ensure_clone("ds", str(remote))
    with pytest.raises(NotFound):
        manager.merge_to_ground_truth("ds", "step-a", "Merge", {})


def test_failed_ground_truth_push_raises_and_leaves_nothing_pending(
    manager: DatasetManager, remote: Path, write_output, inspect
) -> None:
    write_output(manager, str(remote), "step-a", {"a.txt": "1\n"})
    first = manager.merge_to_ground_truth("ds", "step-a", "Merge 1", {})
    write_output(manager, str(remote), "step-a", {"a.txt": "2\n"}, run=2)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'ground-truth is frozen' >&2\nexit 1\n")
    hook.chmod(0o755)

    with pytest.raises(GitError) as info:
        manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {})
    assert "could not push" in info.value.message
    assert "ground-truth is frozen" in info.value.details["stderr"]
    assert inspect.rev(remote, "ground-truth") == first
    clone = manager.clone_path("ds")
    # nothing local claims to be agreed: no local ground-truth, or origin's
    assert inspect.rev(clone, "ground-truth") in (None, first)
    assert inspect.rev(clone, "step-a") == inspect.rev(remote, "step-a")
    assert manager.pending_pushes("ds") == []

    hook.unlink()
    merged = manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {})
    assert inspect.file(remote, "ground-truth", "a.txt") == "2\n"
    assert inspect.parents(remote, merged)[0] == first


def test_a_repository_with_data_on_main_starts_ground_truth_from_it(tmp_path):
    """A dataset that existed before MAO: its main branch is the agreed state until
    ground-truth exists, for inputs, new node branches and the first merge."""
    import subprocess

    from mao.datasets import DatasetManager, Git

    remote = tmp_path / "old.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(remote)], check=True)
    seed = tmp_path / "seed"
    subprocess.run(["git", "clone", "-q", str(remote), str(seed)], check=True, capture_output=True)
    (seed / "existing.csv").write_text("a,b\n")
    subprocess.run(["git", "-C", str(seed), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(seed), "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "data"], check=True
    )
    subprocess.run(["git", "-C", str(seed), "push", "-q", "origin", "main"], check=True)
    main_sha = subprocess.run(
        ["git", "-C", str(seed), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()

    manager = DatasetManager(
        Git(ssh_key_dir=None, name="t", email="t@x"), tmp_path / "ds", tmp_path / "bare", retry_delay=0.01
    )
    view, commit = manager.acquire_input("old", str(remote))
    assert commit == main_sha
    assert (view / "existing.csv").read_text() == "a,b\n"
    manager.release_input("old", view)

    worktree = manager.prepare_output("old", str(remote), "step-node")
    assert (worktree / "existing.csv").exists()
    (worktree / "more.csv").write_text("c\n")
    manager.commit_output(worktree, "more", {"Mao-Run": "1"})
    assert manager.push("old", "step-node")
    merged = manager.merge_to_ground_truth("old", "step-node", "merge", {"Mao-Run": "1"})
    files = subprocess.run(
        ["git", "--git-dir", str(remote), "ls-tree", "--name-only", "ground-truth"], capture_output=True, text=True
    ).stdout.split()
    assert files == ["existing.csv", "more.csv"]
    assert merged


def test_rows_both_sides_appended_are_kept(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of
) -> None:
    write_output(manager, str(remote), "step-a", {"rows.csv": "h\n1\n"})
    manager.merge_to_ground_truth("ds", "step-a", "Merge 1", {})
    # both start from the agreed "h\n1\n" and append a row
    write_output(manager, str(remote), "step-a", {"rows.csv": "h\n1\na\n"}, run=2)
    write_output(other, str(remote), "step-b", {"rows.csv": "h\n1\nb\n"}, run=3)
    manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {})
    merged = other.merge_to_ground_truth("ds", "step-b", "Merge 3", {"Mao-Run": "3"})
    assert inspect.file(remote, "ground-truth", "rows.csv") == "h\n1\na\nb\n"
    assert trailers_of(other, remote, merged) == {"Mao-Run": "3"}


@pytest.mark.parametrize(
    "name,ours,theirs",
    [
        ("rows.csv", "h\nchanged\n", "h\n1\nb\n"),  # a line changed, not only appended
        ("rows.csv", "h\n", "h\n1\nb\n"),  # a line removed
    ],
)
def test_changed_lines_keep_the_newest(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, name, ours, theirs, trailers_of
) -> None:
    write_output(manager, str(remote), "step-a", {name: "h\n1\n"})
    manager.merge_to_ground_truth("ds", "step-a", "Merge 1", {})
    write_output(manager, str(remote), "step-a", {name: ours}, run=2)
    write_output(other, str(remote), "step-b", {name: theirs}, run=3)
    manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {})
    merged = other.merge_to_ground_truth("ds", "step-b", "Merge 3", {})
    assert inspect.file(remote, "ground-truth", name) == theirs
    assert trailers_of(other, remote, merged) == {"Mao-Superseded": name}


def test_files_both_created_keep_both_rows_only_when_line_oriented(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of
) -> None:
    write_output(manager, str(remote), "step-a", {"m.csv": "h\na\n"})
    write_output(other, str(remote), "step-b", {"m.csv": "h\nb\n"})
    manager.merge_to_ground_truth("ds", "step-a", "Merge a", {})
    other.merge_to_ground_truth("ds", "step-b", "Merge b", {})
    assert inspect.file(remote, "ground-truth", "m.csv") == "h\na\nb\n"

    # no shared header: a line-oriented file still keeps both sides' rows
    write_output(manager, str(remote), "step-a", {"n.txt": "node-a\n"}, run=2)
    write_output(other, str(remote), "step-b", {"n.txt": "node-b\n"}, run=3)
    manager.merge_to_ground_truth("ds", "step-a", "Merge a", {})
    other.merge_to_ground_truth("ds", "step-b", "Merge b", {})
    assert inspect.file(remote, "ground-truth", "n.txt") == "node-a\nnode-b\n"

    write_output(manager, str(remote), "step-a", {"m.json": '{\n"v": 1\n}\n'}, run=4)
    write_output(other, str(remote), "step-b", {"m.json": '{\n"v": 2\n}\n'}, run=5)
    manager.merge_to_ground_truth("ds", "step-a", "Merge a", {})
    merged = other.merge_to_ground_truth("ds", "step-b", "Merge b", {})
    assert inspect.file(remote, "ground-truth", "m.json") == '{\n"v": 2\n}\n'
    assert trailers_of(other, remote, merged) == {"Mao-Superseded": "m.json"}


def test_a_path_with_a_carriage_return_is_settled_under_its_own_name(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect
) -> None:
    """Both nodes appended rows to a file whose name holds a carriage return: the rows are kept
    in that file, and no second file (its name read with a newline) appears, markers and all."""
    name = "odd\rname.csv"
    write_output(manager, str(remote), "step-a", {name: "h\n"})
    manager.merge_to_ground_truth("ds", "step-a", "Merge 1", {})
    write_output(manager, str(remote), "step-a", {name: "h\na\n"}, run=2)
    write_output(other, str(remote), "step-b", {name: "h\nb\n"})
    manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {})
    merged = other.merge_to_ground_truth("ds", "step-b", "Merge 3", {})
    listed = subprocess.run(["git", "ls-tree", "-z", "--name-only", merged], cwd=remote, capture_output=True).stdout
    assert [path for path in listed.split(b"\0") if path] == [name.encode()]
    shown = subprocess.run(["git", "cat-file", "blob", f"{merged}:{name}"], cwd=remote, capture_output=True).stdout
    assert shown == b"h\na\nb\n"


def test_a_conflict_git_reports_without_a_file_to_settle_is_not_merged_as_clean(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect
) -> None:
    """One node moved a directory's files to two new ones, the other added a file to it: git says
    the merge conflicts (a split directory rename) yet names no file; ground-truth does not move."""
    write_output(manager, str(remote), "step-a", {"a/1.txt": "1\n", "a/2.txt": "2\n"})
    first = manager.merge_to_ground_truth("ds", "step-a", "Merge 1", {})
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "b").mkdir()
    (worktree / "c").mkdir()
    (worktree / "a" / "1.txt").rename(worktree / "b" / "1.txt")
    (worktree / "a" / "2.txt").rename(worktree / "c" / "2.txt")
    manager.commit_output(worktree, "moved", {})
    assert manager.push("ds", "step-a")
    write_output(other, str(remote), "step-b", {"a/3.txt": "3\n"})
    second = manager.merge_to_ground_truth("ds", "step-a", "Merge 2", {})
    result = inspect.git("merge-tree", "--write-tree", second, inspect.rev(remote, "step-b"), cwd=remote, check=False)
    with pytest.raises((GitError, MergeConflict)):
        other.merge_to_ground_truth("ds", "step-b", "Merge 3", {})
    assert inspect.rev(remote, "ground-truth") == second != first, result
