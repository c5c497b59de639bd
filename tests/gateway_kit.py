"""The refs and the git log of a bare remote, to tell what a gateway request wrote."""

from __future__ import annotations

import subprocess
from pathlib import Path


def refs(bare: Path) -> str:
    """Every ref of a bare repository with its commit: equal before and after means nothing was written."""
    return subprocess.run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)"],
        cwd=bare,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=bare, capture_output=True, text=True, check=True).stdout
