"""Files under the datasets' base directory that a tool may have replaced: removed, read and
cleared without following a link or waiting on a pipe."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

__all__ = ["read_own_file", "remove", "remove_stale_locks"]

logger = logging.getLogger(__name__)


def remove(path: Path) -> None:
    """Remove ``path``: a directory with what it holds, anything else (a link too) by itself."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def read_own_file(path: Path, limit: int = 4096) -> str | None:
    """The first ``limit`` bytes of ``path``, stripped, when it is a regular file (not a link
    to one, nor a pipe a read would wait on); None otherwise. For files a tool could replace."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("utf-8", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def remove_stale_locks(git_dir: Path) -> None:
    """Delete ``*.lock`` files a killed git process left behind (caller holds the dataset lock)."""
    candidates = [git_dir / n for n in ("index.lock", "HEAD.lock", "config.lock", "packed-refs.lock", "shallow.lock")]
    candidates += list((git_dir / "refs").rglob("*.lock"))
    worktrees = git_dir / "worktrees"
    if worktrees.is_dir():
        for admin in worktrees.iterdir():
            candidates += [admin / "index.lock", admin / "HEAD.lock"]
    for lock in candidates:
        if lock.is_file():
            logger.warning("removing stale git lock %s", lock)
            lock.unlink(missing_ok=True)
