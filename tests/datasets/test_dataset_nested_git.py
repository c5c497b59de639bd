"""A tool that leaves a git repository of its own inside its output gets one clear line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mao.datasets import DatasetManager
from mao.errors import GitError


def test_nested_git_repository_is_named_with_what_to_do(manager: DatasetManager, remote: Path) -> None:
    worktree = manager.prepare_output("ds", str(remote), "step-a")
    nested = worktree / "clones" / "upstream"
    nested.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(nested)], check=True)  # a clone with no commit checked out
    (nested / "data.csv").write_text("a,b\n")
    (worktree / "result.txt").write_text("ok\n")
    with pytest.raises(GitError) as info:
        manager.commit_output(worktree, "Result", {})
    message = info.value.message
    assert "\n" not in message
    assert "clones/upstream/.git" in message and "dataset 'ds'" in message
    assert "must write plain files" in message and "does not have a commit" not in message
    assert info.value.details["nested"] == ["clones/upstream/.git"]
