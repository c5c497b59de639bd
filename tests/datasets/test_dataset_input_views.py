"""Input views: ground-truth as a plain directory, moved from commit to commit by its changes."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_a_step_naming_its_input_paths_reads_a_sparse_view(
    manager: DatasetManager, other: DatasetManager, remote: Path
) -> None:
    files: dict[str, str | None] = {"big/a.bin": "a" * 50_000, "big/b.bin": "b" * 50_000, "rows.csv": "1\n"}
    first = _publish(manager, remote, files, 1)
    rows, commit = other.acquire_input("ds", str(remote), paths=["rows.csv"])
    assert commit == first and _files(rows) == {"rows.csv": "1\n"}  # the large files are not written
    # the same paths (in any order) at the same commit share the view; other paths get their own
    same, _ = other.acquire_input("ds", str(remote), paths=["rows.csv", "rows.csv"])
    assert same == rows
    big, _ = other.acquire_input("ds", str(remote), paths=["big/", "*.txt"])
    assert big != rows and _files(big) == {"big/a.bin": "a" * 50_000, "big/b.bin": "b" * 50_000}
    for view in (rows, same, big):
        other.release_input("ds", view)

    # a sparse view is never moved: recycled for a whole view, everything is written afresh
    second = _publish(manager, remote, {"rows.csv": "1\n2\n"}, 2)
    whole, commit = other.acquire_input("ds", str(remote))
    assert commit == second and whole in (rows, big)
    assert _files(whole) == {"big/a.bin": "a" * 50_000, "big/b.bin": "b" * 50_000, "rows.csv": "1\n2\n"}
    # ... and a whole view at the commit serves a step naming its paths
    served, _ = other.acquire_input("ds", str(remote), paths=["rows.csv"])
    assert served == whole
    for view in (whole, served):
        other.release_input("ds", view)

    # after a restart a sparse view is known as one: it serves its paths, not the whole tree
    _publish(manager, remote, {"rows.csv": "1\n2\n3\n"}, 3)
    sparse, _ = other.acquire_input("ds", str(remote), paths=["big/b.bin"])
    other.release_input("ds", sparse)
    restarted = DatasetManager(
        Git(ssh_key_dir=None, name="Instance b", email="b@example.org"), other.base_dir, other.bare_dir
    )
    again, _ = restarted.acquire_input("ds", str(remote), paths=["big/b.bin"])
    assert again == sparse and _files(again) == {"big/b.bin": "b" * 50_000}
    full, _ = restarted.acquire_input("ds", str(remote))
    assert full != sparse and "rows.csv" in _files(full)


def test_a_sparse_view_writes_its_files_as_a_whole_view_does(
    manager: DatasetManager, other: DatasetManager, remote: Path
) -> None:
    # the dataset's .gitattributes apply; a name holding a carriage return is its own file
    files: dict[str, str | None] = {".gitattributes": "*.txt eol=crlf\n", "e.txt": "hello\n", "a\rb": "1", "a\nb": "2"}
    _publish(manager, remote, files, 1)
    sparse, _ = other.acquire_input("ds", str(remote), paths=["e.txt", "a\rb"])
    whole, _ = other.acquire_input("ds", str(remote))
    assert sparse != whole
    assert (sparse / "e.txt").read_bytes() == (whole / "e.txt").read_bytes() == b"hello\r\n"
    assert sorted(p.name for p in sparse.iterdir()) == ["a\rb", "e.txt"] and (sparse / "a\rb").read_text() == "1"


def test_a_view_that_failed_to_be_written_is_not_served(
    manager: DatasetManager, other: DatasetManager, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _publish(manager, remote, {"a.txt": "a\n", "b.txt": "b\n"}, 1)
    whole, _ = other.acquire_input("ds", str(remote))
    other.release_input("ds", whole)
    _publish(manager, remote, {"a.txt": "a2\n"}, 2)
    real = Git.run

    def interrupted(self: Git, args: list[str], *rest: object, **kw: object) -> str:
        if "checkout-index" in args:
            raise KeyboardInterrupt
        return real(self, args, *rest, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Git, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):  # the free whole view was taken for a sparse one
        other.acquire_input("ds", str(remote), paths=["a.txt"])
    monkeypatch.setattr(Git, "run", real)
    assert not whole.exists() and not whole.with_suffix(".commit").exists()
    view, commit = other.acquire_input("ds", str(remote))
    assert commit != first and _files(view) == {"a.txt": "a2\n", "b.txt": "b\n"}


def test_a_sparse_view_is_no_view_to_what_reads_only_commit_markers(
    manager: DatasetManager, other: DatasetManager, remote: Path
) -> None:
    _publish(manager, remote, {"a.txt": "a\n", "b.txt": "b\n"}, 1)
    sparse, _ = other.acquire_input("ds", str(remote), paths=["a.txt"])
    assert not sparse.with_suffix(".commit").exists() and sparse.with_suffix(".sparse").is_file()
