"""Input views: ground-truth as a plain directory, moved from commit to commit by its changes."""

from __future__ import annotations

from pathlib import Path

from mao.datasets import DatasetManager, Git
from mao.datasets.groundtruth import MergeSource


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _publish(manager: DatasetManager, remote: Path, files: dict[str, str | None], run: int) -> str:
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    for rel, text in files.items():
        if text is None:
            (worktree / rel).unlink()
        else:
            (worktree / rel).parent.mkdir(parents=True, exist_ok=True)
            (worktree / rel).write_text(text)
    sha = manager.commit_output(worktree, f"Output of run {run}", {})
    return manager.merge_to_ground_truth("ds", "step-a", f"Merge {run}", {}, MergeSource(sha, fetched=True))


def test_a_view_is_moved_by_the_changes_only(manager: DatasetManager, other: DatasetManager, remote: Path) -> None:
    empty, none = other.acquire_input("ds", str(remote))
    assert none is None and list(empty.iterdir()) == []
    other.release_input("ds", empty)

    first = _publish(manager, remote, {"big.bin": "x" * 100_000, "rows.csv": "1\n", "old.txt": "o\n"}, 1)
    view, commit = other.acquire_input("ds", str(remote))
    assert commit == first
    assert _files(view) == {"big.bin": "x" * 100_000, "rows.csv": "1\n", "old.txt": "o\n"}  # and no .git
    big_inode = (view / "big.bin").stat().st_ino
    # a second step reading the same commit shares the view
    same, _ = other.acquire_input("ds", str(remote))
    assert same == view
    other.release_input("ds", same)
    other.release_input("ds", view)

    second = _publish(manager, remote, {"rows.csv": "1\n2\n", "old.txt": None, "new/n.txt": "n\n"}, 2)
    moved, commit = other.acquire_input("ds", str(remote))
    assert moved == view and commit == second
    assert _files(moved) == {"big.bin": "x" * 100_000, "rows.csv": "1\n2\n", "new/n.txt": "n\n"}
    assert (moved / "big.bin").stat().st_ino == big_inode  # unchanged: not written again


def test_a_view_in_use_is_never_moved(manager: DatasetManager, other: DatasetManager, remote: Path) -> None:
    first = _publish(manager, remote, {"rows.csv": "1\n"}, 1)
    in_use, commit = other.acquire_input("ds", str(remote))
    assert commit == first
    _publish(manager, remote, {"rows.csv": "1\n2\n"}, 2)
    newer, _ = other.acquire_input("ds", str(remote))
    assert newer != in_use
    assert (in_use / "rows.csv").read_text() == "1\n"
    assert (newer / "rows.csv").read_text() == "1\n2\n"


def test_views_are_reused_after_a_restart(manager: DatasetManager, other: DatasetManager, remote: Path) -> None:
    first = _publish(manager, remote, {"rows.csv": "1\n"}, 1)
    view, _ = other.acquire_input("ds", str(remote))
    other.release_input("ds", view)
    restarted = DatasetManager(
        Git(ssh_key_dir=None, name="Instance b", email="b@example.org"), other.base_dir, other.bare_dir
    )
    again, commit = restarted.acquire_input("ds", str(remote))
    assert again == view and commit == first
    git_before = restarted.git.by_subcommand["read-tree"]
    restarted.release_input("ds", again)
    same, _ = restarted.acquire_input("ds", str(remote))
    assert same == view and restarted.git.by_subcommand["read-tree"] == git_before
