"""File modes of the instance's data directory and its SQLite store.

The data directory is 0700 and the SQLite database with its ``-wal``, ``-shm`` and
``-journal`` files 0600: readable by the user the instance runs as only. SQLite creates
its ``-wal`` and ``-shm`` files with the mode of the database file, so a database made
0600 keeps them 0600. A directory or file found more open (an install from before) is
tightened, with a log line.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def tighten(path: Path, mode: int) -> bool:
    """Take from ``path`` every permission beyond ``mode`` (a warning says so); False when
    there was nothing to take or ``path`` is missing. A path this user cannot change is logged."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return False
    if not current & ~mode & 0o777:
        return False
    try:
        path.chmod(current & mode)
    except OSError as exc:
        log.warning(
            "%s is open to other users (mode %o) and cannot be made %o: %s; it holds this instance's "
            "private variables, change its mode or owner by hand",
            path,
            current,
            mode,
            exc.strerror,
        )
        return False
    log.warning("%s was open to other users (mode %o): made it %o", path, current, current & mode)
    return True


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may use (0700): made so, or tightened."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    tighten(path, 0o700)
    return path


def create_private_file(path: Path) -> None:
    """An empty ``path`` with mode 0600 unless it exists (an empty file is an empty SQLite
    database: SQLite then keeps its mode, and gives it to the ``-wal`` and ``-shm`` files)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def private_sqlite(database: Path) -> None:
    """The SQLite ``database`` and its companion files, each made 0600 if more open."""
    for path in (database, *(database.with_name(database.name + suffix) for suffix in SQLITE_COMPANIONS)):
        tighten(path, 0o600)
