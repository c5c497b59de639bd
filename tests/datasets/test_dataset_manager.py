"""Clone, output branches, commits with trailers, input views, bare repositories."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mao.datasets import DatasetManager
from mao.errors import AlreadyExists, InvalidInput, NotFound


def test_clone_of_an_empty_remote(manager: DatasetManager, remote: Path, inspect) -> None:
    clone = manager.ensure_clone("ds", str(remote))
    assert clone == manager.base_dir / "ds" / "clone"
    assert (clone / ".git").is_dir()
    assert inspect.fetched(clone) == []
    assert manager.log("ds", str(remote)) == []
    assert manager.head("ds", "ground-truth") is None
    assert manager.pending_pushes("ds") == []
    view, commit = manager.acquire_input("ds", str(remote))
    assert commit is None and view.is_dir() and list(view.iterdir()) == []
    manager.release_input("ds", view)
    # a second call fetches instead of cloning again
    assert manager.ensure_clone("ds", str(remote)) == clone


def test_a_fresh_clone_keeps_what_it_fetched_as_a_pack(
    manager: DatasetManager, make_manager, remote: Path, write_output
) -> None:
    """A few large objects are kept packed, as git clone keeps them, not written out one by one."""
    write_output(manager, str(remote), "step-a", {f"part-{i}.bin": os.urandom(64 * 1024).hex() for i in range(3)})
    clone = make_manager("fresh").ensure_clone("ds", str(remote))
    objects = clone / ".git" / "objects"
    loose = [path for path in objects.glob("??/*") if path.is_file()]
    assert loose == [] and list((objects / "pack").glob("*.pack"))


def test_file_url_works_too(manager: DatasetManager, remote: Path, write_output, inspect) -> None:
    url = f"file://{remote}"
    sha = write_output(manager, url, "step-a", {"a.txt": "A\n"})
    assert inspect.rev(remote, "step-a") == sha


def test_output_branch_is_created_and_pushed(manager: DatasetManager, remote: Path, inspect) -> None:
    worktree = manager.prepare_output("ds", str(remote), "collect-a")
    assert worktree == manager.base_dir / "ds" / "worktrees" / "collect-a"
    assert [p.name for p in worktree.iterdir()] == [".git"]
    (worktree / "data").mkdir()
    (worktree / "data" / "items.csv").write_text("id,name\n1,x\n")
    sha = manager.commit_output(worktree, "Collect items", {"Mao-Run": "12"})
    assert sha and len(sha) == 40
    assert manager.pending_pushes("ds") == ["collect-a"]
    assert manager.push("ds", "collect-a") is True
    assert manager.pending_pushes("ds") == []
    assert inspect.branches(remote) == ["collect-a"]
    assert inspect.rev(remote, "collect-a") == sha
    assert inspect.file(remote, "collect-a", "data/items.csv") == "id,name\n1,x\n"
    manager.ensure_clone("ds", str(remote))
    assert inspect.fetched(manager.clone_path("ds")) == ["collect-a"]
    assert manager.head("ds", "collect-a") == sha


def test_commit_trailers_are_read_back(manager: DatasetManager, remote: Path) -> None:
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "out.json").write_text("{}\n")
    trailers = {
        "Mao-Run": "12",
        "Mao-Tool": "scraper",
        "Mao-Image": "sha256:" + "ab" * 32,
        "Mao-Input-Commit": "0" * 40,
    }
    sha = manager.commit_output(worktree, "Scrape\n\nLonger description.", trailers)
    assert manager.log("ds", str(remote), ref=sha, limit=1)[0]["trailers"] == trailers  # not pushed yet
    manager.push("ds", "step-a")
    [entry, root] = manager.log("ds", str(remote), ref="step-a")
    assert entry["sha"] == sha
    assert entry["subject"] == "Scrape"
    assert entry["author"] == "Instance a" and entry["email"] == "a@example.org"
    assert entry["trailers"] == trailers
    assert entry["parents"] == [root["sha"]] and root["parents"] == []
    assert manager.log("ds", str(remote), ref=sha, limit=1)[0]["sha"] == sha


def test_no_change_commit_returns_none(manager: DatasetManager, remote: Path, write_output) -> None:
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    assert manager.commit_output(worktree, "Nothing", {"Mao-Run": "1"}) is None
    first = write_output(manager, str(remote), "step-a", {"a.txt": "A\n"})
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "a.txt").write_text("A\n")  # the same content again
    assert manager.commit_output(worktree, "Same again", {"Mao-Run": "2"}) is None
    assert manager.head("ds", "step-a") == first


def test_deleted_files_are_committed(manager: DatasetManager, remote: Path, write_output, inspect) -> None:
    write_output(manager, str(remote), "step-a", {"a.txt": "A\n", "b.txt": "B\n"})
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "b.txt").unlink()
    assert manager.commit_output(worktree, "Drop b", {}) is not None
    manager.push("ds", "step-a")
    assert inspect.files(remote, "step-a") == ["a.txt"]


def test_ignored_files_are_committed_too(manager: DatasetManager, remote: Path, inspect) -> None:
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / ".gitignore").write_text("*.log\n")
    (worktree / "run.log").write_text("everything the tool wrote is output\n")
    manager.commit_output(worktree, "With ignored", {})
    manager.push("ds", "step-a")
    assert inspect.files(remote, "step-a") == [".gitignore", "run.log"]


def test_tool_replacing_dot_git_is_not_committed(manager: DatasetManager, remote: Path, inspect) -> None:
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / ".git").unlink()
    (worktree / ".git").mkdir()  # e.g. a tool that runs `git init` in its output
    (worktree / ".git" / "config").write_text("[core]\n")
    (worktree / "result.txt").write_text("R\n")
    sha = manager.commit_output(worktree, "Result", {})
    manager.push("ds", "step-a")
    assert inspect.rev(remote, "step-a") == sha
    assert inspect.files(remote, "step-a") == ["result.txt"]
    assert (worktree / ".git").is_file()


def test_prepare_output_cleans_leftovers(manager: DatasetManager, remote: Path, write_output, inspect) -> None:
    write_output(manager, str(remote), "step-a", {"keep.txt": "K\n"})
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "keep.txt").write_text("half-written\n")
    (worktree / "junk").mkdir()
    (worktree / "junk" / "x.tmp").write_text("x")
    (worktree / "nested").mkdir()
    inspect.git("init", "--quiet", str(worktree / "nested"))
    again = manager.prepare_output("ds", str(remote), "step-a")
    assert again == worktree
    assert sorted(p.name for p in worktree.iterdir()) == [".git", "keep.txt"]
    assert (worktree / "keep.txt").read_text() == "K\n"
    assert inspect.status(worktree) == ""


def test_new_output_branch_starts_from_ground_truth(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect
) -> None:
    write_output(manager, str(remote), "step-a", {"a.txt": "A\n"})
    merged = manager.merge_to_ground_truth("ds", "step-a", "Merge step-a", {})
    worktree = other.prepare_output("ds", str(remote), "step-b")
    assert (worktree / "a.txt").read_text() == "A\n"
    assert inspect.git("rev-parse", "HEAD", cwd=worktree).strip() == merged


def test_remote_url_change_is_followed(manager: DatasetManager, make_remote, write_output, inspect) -> None:
    first, second = make_remote(), make_remote()
    write_output(manager, str(first), "step-a", {"a.txt": "A\n"})
    clone = manager.ensure_clone("ds", str(second))
    assert inspect.git("remote", "get-url", "origin", cwd=clone).strip() == str(second)
    assert inspect.fetched(clone) == []
    assert manager.pending_pushes("ds") == ["step-a"]  # the new remote lacks it


def test_an_input_view_holds_the_agreed_files(manager: DatasetManager, remote: Path, write_output) -> None:
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "dir" / "sub").mkdir(parents=True)
    (worktree / "dir" / "sub" / "deep.txt").write_text("deep\n")
    (worktree / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (worktree / "run.sh").chmod(0o755)
    os.symlink("dir/sub/deep.txt", worktree / "link")
    manager.commit_output(worktree, "Files", {})
    manager.push("ds", "step-a")
    first = manager.merge_to_ground_truth("ds", "step-a", "Merge", {"Mao-Run": "1"})
    write_output(manager, str(remote), "step-a", {"dir/sub/deep.txt": "changed\n"}, run=2)
    second = manager.merge_to_ground_truth("ds", "step-a", "Merge", {"Mao-Run": "2"})

    view, commit = manager.acquire_input("ds", str(remote))
    assert commit == second
    assert (view / "dir" / "sub" / "deep.txt").read_text() == "changed\n"
    assert os.access(view / "run.sh", os.X_OK)
    assert os.readlink(view / "link") == "dir/sub/deep.txt"
    assert not (view / ".git").exists()
    assert sorted(p.name for p in view.iterdir()) == ["dir", "link", "run.sh"]

    older, commit = manager.acquire_input("ds", str(remote), ref=first)
    assert commit == first and older != view
    assert (older / "dir" / "sub" / "deep.txt").read_text() == "deep\n"
    assert (view / "dir" / "sub" / "deep.txt").read_text() == "changed\n"  # the view in use stays


def test_create_bare_and_clone_it(manager: DatasetManager, write_output, inspect) -> None:
    path = manager.create_bare("new-ds")
    assert path == manager.bare_dir / "new-ds.git"
    assert inspect.git("symbolic-ref", "HEAD", cwd=path).strip() == "refs/heads/ground-truth"
    assert inspect.git("rev-parse", "--is-bare-repository", cwd=path).strip() == "true"
    manager.ensure_clone("new-ds", str(path))
    write_output(manager, str(path), "step-a", {"a.txt": "A\n"}, name="new-ds")
    manager.merge_to_ground_truth("new-ds", "step-a", "Merge", {})
    assert inspect.file(path, "ground-truth", "a.txt") == "A\n"
    with pytest.raises(AlreadyExists):
        manager.create_bare("new-ds")


@pytest.mark.parametrize("bad", ["", "a/b", "..", "-x", "a b", "x;rm", "a" * 65])
def test_bad_dataset_names_are_refused(manager: DatasetManager, remote: Path, bad: str) -> None:
    with pytest.raises(InvalidInput):
        manager.create_bare(bad)
    with pytest.raises(InvalidInput):
        manager.ensure_clone(bad, str(remote))


@pytest.mark.parametrize("bad", ["", "a/b", "a..b", "-x", "x.lock", "a b", "ground truth"])
def test_bad_branch_names_are_refused(manager: DatasetManager, remote: Path, bad: str) -> None:
    with pytest.raises(InvalidInput):
        manager.prepare_output("ds", str(remote), bad)


def test_bad_urls_and_foreign_paths_are_refused(manager: DatasetManager, remote: Path, tmp_path: Path) -> None:
    for url in ("ext::sh -c touch% /tmp/pwned", "relative/path", "--upload-pack=touch@x:y"):
        with pytest.raises(InvalidInput):
            manager.ensure_clone("ds", url)
    with pytest.raises(InvalidInput, match="merges"):
        manager.prepare_output("ds", str(remote), "ground-truth")
    with pytest.raises(InvalidInput, match="not a dataset worktree"):
        manager.commit_output(tmp_path, "x", {})
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    (worktree / "a").write_text("a")
    with pytest.raises(InvalidInput, match="trailer"):
        manager.commit_output(worktree, "x", {"Bad Key": "v"})
    with pytest.raises(InvalidInput, match="single line"):
        manager.commit_output(worktree, "x", {"Key": "a\nb"})
    with pytest.raises(NotFound):
        manager.push("ds", "never-written")


def test_two_branches_of_one_dataset_in_parallel(manager: DatasetManager, remote: Path, inspect) -> None:
    manager.ensure_clone("ds", str(remote))
    errors: list[BaseException] = []
    results: dict[str, list[str]] = {}

    def pipeline(branch: str) -> None:
        try:
            shas = []
            for run in range(5):
                worktree = manager.prepare_output("ds", str(remote), branch)
                (worktree / f"{branch}.txt").write_text(f"{branch} run {run}\n")
                shas.append(manager.commit_output(worktree, f"{branch} {run}", {"Mao-Run": str(run)}))
                assert manager.push("ds", branch)
            results[branch] = shas
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=pipeline, args=(b,)) for b in ("step-a", "step-b", "step-c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for branch, shas in results.items():
        assert inspect.rev(remote, branch) == shas[-1]
        assert inspect.files(remote, branch) == [f"{branch}.txt"]
        assert inspect.file(remote, branch, f"{branch}.txt") == f"{branch} run 4\n"
