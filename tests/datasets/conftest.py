"""Fixtures for the datasets tests: real bare repositories as remotes, one manager per instance.

Two managers with their own base directories stand for two instances of a
federation writing to the same remote. Remotes are inspected with plain git so
that the tests do not trust the code they test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mao.datasets import DatasetManager, Git

NAME = "ds"


def plain_git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    """Run git outside the code under test (identity given, user config ignored)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Tester",
        "GIT_AUTHOR_EMAIL": "tester@example.org",
        "GIT_COMMITTER_NAME": "Tester",
        "GIT_COMMITTER_EMAIL": "tester@example.org",
        "LC_ALL": "C",
    }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


class Inspect:
    """Read repositories with plain git: remotes (bare) and worktrees."""

    git = staticmethod(plain_git)

    @staticmethod
    def rev(repo: Path, ref: str) -> str | None:
        """The commit of branch ``ref`` in ``repo``, or None."""
        out = plain_git("rev-parse", "--verify", "--quiet", f"refs/heads/{ref}", cwd=repo, check=False)
        return out.strip() or None

    @staticmethod
    def branches(repo: Path) -> list[str]:
        out = plain_git("for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/", cwd=repo)
        return sorted(out.split())

    @staticmethod
    def fetched(clone: Path) -> list[str]:
        """The branches of origin a clone knows, as of its last fetch."""
        out = plain_git("for-each-ref", "--format=%(refname:lstrip=3)", "refs/remotes/origin/", cwd=clone)
        return sorted(branch for branch in out.split() if branch != "HEAD")

    @staticmethod
    def file(repo: Path, ref: str, path: str) -> str:
        return plain_git("show", f"refs/heads/{ref}:{path}", cwd=repo)

    @staticmethod
    def files(repo: Path, ref: str) -> list[str]:
        out = plain_git("ls-tree", "-r", "-z", "--name-only", f"refs/heads/{ref}", cwd=repo)
        return sorted(p for p in out.split("\0") if p)

    @staticmethod
    def parents(repo: Path, sha: str) -> list[str]:
        return plain_git("rev-list", "--parents", "-n", "1", sha, cwd=repo).split()[1:]

    @staticmethod
    def status(worktree: Path) -> str:
        """``git status --porcelain`` including ignored files: empty means clean."""
        return plain_git("status", "--porcelain", "--ignored", "--untracked-files=all", cwd=worktree)


@pytest.fixture
def inspect() -> Inspect:
    return Inspect()


@pytest.fixture
def make_remote(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """Create an empty bare repository whose default branch is ground-truth."""

    def make() -> Path:
        path = tmp_path_factory.mktemp("remote") / "ds.git"
        plain_git("init", "--quiet", "--bare", "--initial-branch=ground-truth", str(path))
        return path

    return make


@pytest.fixture
def remote(make_remote: Callable[[], Path]) -> Path:
    return make_remote()


@pytest.fixture
def make_manager(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., DatasetManager]:
    """A DatasetManager for one instance, in a base directory of its own."""

    def make(instance: str = "a", **kwargs) -> DatasetManager:
        base = tmp_path_factory.mktemp(f"instance-{instance}")
        git = Git(ssh_key_dir=None, name=f"Instance {instance}", email=f"{instance}@example.org", timeout=60)
        kwargs.setdefault("push_retries", 1)
        kwargs.setdefault("retry_delay", 0.0)
        return DatasetManager(git, base / "datasets", base / "bare", **kwargs)

    return make


@pytest.fixture
def manager(make_manager: Callable[..., DatasetManager]) -> DatasetManager:
    return make_manager("a")


@pytest.fixture
def other(make_manager: Callable[..., DatasetManager]) -> DatasetManager:
    """A second instance sharing the same remotes."""
    return make_manager("b")


@pytest.fixture
def trailers_of() -> Callable[..., dict[str, str]]:
    """``trailers_of(manager, remote, sha)``: the trailers of commit ``sha`` as the dataset's history reads them."""

    def read(manager: DatasetManager, remote: Path | str, sha: str, name: str = NAME) -> dict[str, str]:
        [entry] = manager.log(name, str(remote), ref=sha, limit=1)
        assert entry["sha"] == sha
        return entry["trailers"]

    return read


@pytest.fixture
def write_output() -> Callable[..., str]:
    """``write_output(manager, url, branch, files, run=1)``: prepare, write, commit with trailers, push."""

    def write(
        manager: DatasetManager, url: str, branch: str, files: dict[str, str], run: int = 1, name: str = NAME
    ) -> str:
        worktree = manager.prepare_output(name, url, branch)
        for rel, text in files.items():
            target = worktree / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        sha = manager.commit_output(worktree, f"Output of run {run}", {"Mao-Run": str(run)})
        assert sha is not None
        assert manager.push(name, branch) is True
        return sha

    return write
