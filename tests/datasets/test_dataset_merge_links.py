"""Merges into ground-truth never write through a link a tool committed.

A symbolic link is a blob holding its target; two nodes changing that target are a
conflict like any other, settled by keeping the newest link (or reported), never by
writing merged "lines" into whatever the link points at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from mao.datasets import DatasetManager
from mao.datasets.changes import TallyCommit

NAME = "ds"


def _commit(manager: DatasetManager, remote: Path, branch: str, links: dict[str, str], files: dict[str, str]) -> str:
    """Prepare ``branch``, set ``links`` (path -> target) and ``files`` (path -> text), commit and push."""
    worktree = manager.prepare_output(NAME, str(remote), branch)
    for rel, target in links.items():
        path = worktree / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
    for rel, text in files.items():
        path = worktree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    sha = manager.commit_output(worktree, f"Write {branch}", {})
    assert sha is not None
    assert manager.push(NAME, branch) is True
    return sha


def _entry(inspect, remote: Path, ref: str, path: str) -> tuple[str, str]:
    """(mode, content) of ``path`` in ``ref`` of the remote."""
    listed = inspect.git("ls-tree", "-z", f"refs/heads/{ref}", "--", path, cwd=remote).rstrip("\0")
    mode = listed.split(" ", 1)[0]
    return mode, inspect.git("cat-file", "blob", f"refs/heads/{ref}:{path}", cwd=remote)


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("untouched\n")
    return outside


def test_a_link_both_nodes_retargeted_keeps_the_newest_link_and_writes_nothing_outside(
    manager: DatasetManager, other: DatasetManager, remote: Path, inspect, tmp_path: Path, trailers_of
) -> None:
    """The target ends in a newline and each side "appends a line" to it: that is not a file
    both appended rows to. The newest link wins (named in Mao-Superseded), nothing is created
    where any of the links point, and the earlier link stays in ground-truth's history. Rows
    both appended to a file in the same merge are all kept."""
    outside = _outside(tmp_path)
    base = f"{outside}/pwn\n"
    _commit(manager, remote, "step-a", {"L": base}, {"rows.csv": "h\n"})
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 1", {})

    _commit(manager, remote, "step-a", {"L": base + "A\n"}, {"rows.csv": "h\na\n"})
    node_b = _commit(other, remote, "step-b", {"L": base + "B\n"}, {"rows.csv": "h\nb\n"})
    merged_a = manager.merge_to_ground_truth(NAME, "step-a", "Merge 2", {})
    merged_b = other.merge_to_ground_truth(NAME, "step-b", "Merge 3", {"Mao-Run": "3"})

    assert sorted(p.name for p in outside.iterdir()) == ["keep"]
    assert (outside / "keep").read_text() == "untouched\n"
    assert inspect.rev(remote, "ground-truth") == merged_b
    assert inspect.parents(remote, merged_b) == [merged_a, node_b]
    assert _entry(inspect, remote, "ground-truth", "L") == ("120000", base + "B\n")
    assert inspect.git("cat-file", "blob", f"{merged_a}:L", cwd=remote) == base + "A\n"
    assert trailers_of(other, remote, merged_b) == {"Mao-Run": "3", "Mao-Superseded": "L"}
    assert inspect.file(remote, "ground-truth", "rows.csv") == "h\na\nb\n"  # rows appended: both kept
    assert not other.worktree_path(NAME, "ground-truth").exists()  # settled with no worktree


def test_a_link_one_node_made_a_file_is_settled_without_following_it(
    manager: DatasetManager, other: DatasetManager, remote: Path, inspect, tmp_path: Path, trailers_of
) -> None:
    """One node turned a line-oriented file into a link to a host file, the other appended a row:
    the newest side wins as it is (a link stays a link), and the host file is not written."""
    outside = _outside(tmp_path)
    _commit(manager, remote, "step-a", {}, {"rows.csv": "h\n1\n"})
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 1", {})

    worktree = manager.prepare_output(NAME, str(remote), "step-a")
    (worktree / "rows.csv").unlink()
    os.symlink(str(outside / "keep"), worktree / "rows.csv")
    assert manager.commit_output(worktree, "link", {}) is not None
    assert manager.push(NAME, "step-a")
    _commit(other, remote, "step-b", {}, {"rows.csv": "h\n1\n2\n"})
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 2", {})
    merged = other.merge_to_ground_truth(NAME, "step-b", "Merge 3", {})

    assert (outside / "keep").read_text() == "untouched\n"
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]
    assert _entry(inspect, remote, "ground-truth", "rows.csv") == ("100644", "h\n1\n2\n")
    assert trailers_of(other, remote, merged) == {"Mao-Superseded": "rows.csv"}

    # and the other way round: the newest side is the link, kept as a link
    _commit(other, remote, "step-b", {}, {"rows.csv": "h\n1\n2\n3\n"})
    worktree = manager.prepare_output(NAME, str(remote), "step-a")
    (worktree / "rows.csv").unlink()
    os.symlink(str(outside / "keep"), worktree / "rows.csv")
    assert manager.commit_output(worktree, "link again", {}) is not None
    assert manager.push(NAME, "step-a")
    other.merge_to_ground_truth(NAME, "step-b", "Merge 4", {})
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 5", {})
    assert _entry(inspect, remote, "ground-truth", "rows.csv") == ("120000", str(outside / "keep"))
    assert (outside / "keep").read_text() == "untouched\n"


def test_a_file_under_a_linked_directory_is_never_written_or_removed_through_it(
    manager: DatasetManager, other: DatasetManager, remote: Path, inspect, tmp_path: Path, trailers_of
) -> None:
    """Ground-truth holds ``d/rows.csv``; one node replaces ``d`` by a link to a host directory
    holding a file of that name, the other appends a row. The newest side wins, in either
    order, and the host directory is neither written nor emptied."""
    outside = _outside(tmp_path)
    (outside / "rows.csv").write_text("host\n")
    _commit(manager, remote, "step-a", {}, {"d/rows.csv": "h\n"})
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 1", {})

    def link_d() -> None:
        worktree = manager.prepare_output(NAME, str(remote), "step-a")
        shutil.rmtree(worktree / "d")
        os.symlink(str(outside), worktree / "d")
        assert manager.commit_output(worktree, "link the directory", {}) is not None
        assert manager.push(NAME, "step-a")

    # the link first, the appended row newest
    link_d()
    _commit(other, remote, "step-b", {}, {"d/rows.csv": "h\nb\n"})
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 2", {})
    merged = other.merge_to_ground_truth(NAME, "step-b", "Merge 3", {})
    assert _entry(inspect, remote, "ground-truth", "d/rows.csv") == ("100644", "h\nb\n")
    assert trailers_of(other, remote, merged) == {"Mao-Superseded": "d, d/rows.csv"}
    assert (outside / "rows.csv").read_text() == "host\n"
    assert sorted(p.name for p in outside.iterdir()) == ["keep", "rows.csv"]

    # the appended row first, the link newest
    _commit(other, remote, "step-b", {}, {"d/rows.csv": "h\nb\nc\n"})
    link_d()
    other.merge_to_ground_truth(NAME, "step-b", "Merge 4", {})
    merged = manager.merge_to_ground_truth(NAME, "step-a", "Merge 5", {})
    assert _entry(inspect, remote, "ground-truth", "d") == ("120000", str(outside))
    assert trailers_of(manager, remote, merged) == {"Mao-Superseded": "d, d/rows.csv"}
    assert (outside / "rows.csv").read_text() == "host\n"
    assert sorted(p.name for p in outside.iterdir()) == ["keep", "rows.csv"]
    assert not manager.worktree_path(NAME, "ground-truth").exists()  # settled with no worktree


def test_rows_appended_to_a_regular_file_still_merge_line_by_line(
    manager: DatasetManager, other: DatasetManager, remote: Path, inspect, tmp_path: Path, trailers_of
) -> None:
    """The same race on a plain file (and an executable one) keeps both sides' rows, mode and line ends kept."""
    outside = _outside(tmp_path)
    _commit(
        manager,
        remote,
        "step-a",
        {"L": f"{outside}/pwn\n"},
        {"rows.csv": "h\n", "run.sh": "#!/bin/sh\n", "win.csv": "h\r\n"},
    )
    (manager.worktree_path(NAME, "step-a") / "run.sh").chmod(0o755)
    manager.commit_output(manager.worktree_path(NAME, "step-a"), "exec", {})
    assert manager.push(NAME, "step-a")
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 1", {})

    _commit(
        manager, remote, "step-a", {}, {"rows.csv": "h\na\n", "run.sh": "#!/bin/sh\necho a\n", "win.csv": "h\r\na\r\n"}
    )
    _commit(
        other, remote, "step-b", {}, {"rows.csv": "h\nb\n", "run.sh": "#!/bin/sh\necho b\n", "win.csv": "h\r\nb\r\n"}
    )
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 2", {})
    merged = other.merge_to_ground_truth(NAME, "step-b", "Merge 3", {"Mao-Run": "3"})

    assert _entry(inspect, remote, "ground-truth", "rows.csv") == ("100644", "h\na\nb\n")
    assert _entry(inspect, remote, "ground-truth", "run.sh") == ("100755", "#!/bin/sh\necho a\necho b\n")
    assert _entry(inspect, remote, "ground-truth", "L") == ("120000", f"{outside}/pwn\n")
    shown = subprocess.run(
        ["git", "cat-file", "blob", f"{merged}:win.csv"], cwd=remote, capture_output=True, check=True
    )
    assert shown.stdout == b"h\r\na\r\nb\r\n"
    assert trailers_of(other, remote, merged) == {"Mao-Run": "3"}
    assert not other.worktree_path(NAME, "ground-truth").exists()  # settled with no worktree
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]


@pytest.mark.parametrize("first", ["a", "b"])
def test_a_link_retargeted_by_one_node_and_a_row_appended_by_the_other_lose_nothing(
    manager: DatasetManager, other: DatasetManager, remote: Path, inspect, tmp_path: Path, first: str
) -> None:
    """Changes to different paths in the same merge: the link's new target and the new row both
    reach ground-truth, in either order, and no link is followed."""
    outside = _outside(tmp_path)
    _commit(manager, remote, "step-a", {"L": f"{outside}/x\n"}, {"rows.csv": "h\n"})
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 1", {})
    _commit(manager, remote, "step-a", {"L": f"{outside}/x\nA\n"}, {"rows.csv": "h\na\n"})
    _commit(other, remote, "step-b", {}, {"rows.csv": "h\nb\n"})
    order = [(manager, "step-a"), (other, "step-b")]
    if first == "b":
        order.reverse()
    for mgr, branch in order:
        mgr.merge_to_ground_truth(NAME, branch, f"Merge {branch}", {})
    assert _entry(inspect, remote, "ground-truth", "L") == ("120000", f"{outside}/x\nA\n")
    expected = "h\na\nb\n" if first == "a" else "h\nb\na\n"
    assert inspect.file(remote, "ground-truth", "rows.csv") == expected
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]


def test_a_tally_applies_a_path_holding_a_newline_as_one_path(manager: DatasetManager, remote: Path, inspect) -> None:
    """A file name is the tool's to choose: one that reads like a second index record (here:
    remove ``keep.csv``) is still one path in the tally commit, and nothing else changes."""
    _commit(manager, remote, "step-a", {}, {"keep.csv": "h\n"})
    manager.merge_to_ground_truth(NAME, "step-a", "Merge 1", {})
    tricky = f"x\n0 {'0' * 40}\tkeep.csv"
    node = _commit(manager, remote, "step-a", {}, {tricky: "row\n"})
    sha, created = manager.write_tally(NAME, TallyCommit("p", "s", "slot-1", node, "Tally", {"Mao-Vote-For": "x"}))
    assert created
    listed = inspect.git("ls-tree", "-r", "-z", "--name-only", sha, cwd=remote)
    assert sorted(p for p in listed.split("\0") if p) == ["keep.csv", tricky]
    assert inspect.git("cat-file", "blob", f"{sha}:keep.csv", cwd=remote) == "h\n"


@pytest.mark.parametrize("kind", ["pipe", "link"])
def test_a_worktree_link_file_a_tool_replaced_is_never_read_or_written_through(
    manager: DatasetManager, remote: Path, tmp_path: Path, kind: str
) -> None:
    """A tool replaced its worktree's ``.git`` by a pipe (a read would wait forever) or by a link
    to a host file: the next prepare of that branch neither waits, nor reads or writes the host
    file; it puts its own ``.git`` back."""
    outside = _outside(tmp_path)
    worktree = manager.prepare_output(NAME, str(remote), "step-a")
    (worktree / "a.txt").write_text("A\n")
    assert manager.commit_output(worktree, "a", {}) is not None  # leaves the worktree as committed
    dotgit = worktree / ".git"
    expected = dotgit.read_text()
    dotgit.unlink()
    if kind == "pipe":
        os.mkfifo(dotgit)
    else:
        (outside / "keep").write_text(expected)
        os.symlink(outside / "keep", dotgit)
    done = threading.Event()
    failure: list[BaseException] = []

    def prepare() -> None:
        try:
            manager.prepare_output(NAME, str(remote), "step-a")
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=prepare, daemon=True).start()
    if not done.wait(30):
        os.close(os.open(dotgit, os.O_WRONLY | os.O_NONBLOCK))  # let the blocked read end
        pytest.fail("prepare_output waited on the .git a tool left")
    assert failure == []
    assert not dotgit.is_symlink() and dotgit.read_text() == expected
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]
    if kind == "link":
        assert (outside / "keep").read_text() == expected
