"""Bare repositories this instance serves as dataset remotes (``bare_dir/<name>.git``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from mao.datasets.git import Git
from mao.datasets.refs import GROUND_TRUTH
from mao.errors import AlreadyExists
from mao.validation import check_name

__all__ = ["BareRepositories"]


class BareRepositories:
    """Creates the bare repositories under ``bare_dir``."""

    def __init__(self, git: Git, bare_dir: Path) -> None:
        self.git = git
        self.bare_dir = Path(bare_dir).resolve()

    def create(self, name: str) -> Path:
        """Create an empty bare repository ``bare_dir/<name>.git`` whose default branch is ground-truth."""
        check_name(name, "dataset name")
        self.bare_dir.mkdir(parents=True, exist_ok=True)
        path = self.bare_dir / f"{name}.git"
        try:
            path.mkdir()
        except FileExistsError:
            raise AlreadyExists(f"a repository for dataset {name!r} already exists at {path}") from None
        try:
            self.git.run(["init", "--quiet", "--bare", f"--initial-branch={GROUND_TRUTH}", str(path)])
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return path
