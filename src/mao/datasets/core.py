"""The core every dataset operation stands on: where a dataset's clone and worktrees live,
the per-dataset lock, cloning and fetching, and reading refs.

Layout under ``base_dir``::

    <dataset>/clone                  the clone of the dataset's remote (``origin``);
                                     its own working tree is never checked out
    <dataset>/worktrees/<branch>     one git worktree per branch written here
    <dataset>/inputs/view-<n>        read-only views of the dataset as a step's input
    <dataset>/.lock                  serialises git operations across processes

Operations that move refs hold the dataset's lock: a re-entrant thread lock plus an
``flock`` on ``.lock`` for other processes on the same base directory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from mao.datasets.files import remove
from mao.datasets.git import Git, redact
from mao.datasets.refs import Refs, check_branch
from mao.errors import GitError, InvalidInput, NotFound
from mao.validation import check_git_url, check_local_remote, check_name

__all__ = ["DatasetCore", "DatasetLock"]

logger = logging.getLogger(__name__)

# The clone's own HEAD points at this unborn branch, so that every real branch is
# free to be checked out in a worktree. No valid branch name can collide with it.
_CLONE_HEAD = "_mao-clone"


class DatasetLock:
    """A re-entrant thread lock that also holds an ``flock`` while any thread is inside."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._rlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> DatasetLock:
        self._rlock.acquire()
        try:
            if self._depth == 0:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._rlock.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None
        finally:
            self._rlock.release()


# One lock per lock file in the process, whichever object asks for it.
_locks: dict[Path, DatasetLock] = {}
_locks_guard = threading.Lock()


class DatasetCore:
    """One instance's dataset clones under ``base_dir``: their paths, their locks, cloning and
    fetching them (``ensure_clone``), and their refs (``refs``).

    ``local_remote_roots`` is where a local-path remote may be (None: anywhere); it is
    checked before cloning.
    """

    def __init__(self, git: Git, base_dir: Path, *, local_remote_roots: Sequence[Path] | None = None) -> None:
        self.git = git
        self.base_dir = Path(base_dir).resolve()
        self.local_remote_roots = local_remote_roots
        self.refs = Refs(git)
        self._origins: dict[Path, str] = {}  # clone -> origin URL, as last checked or set
        self.after_fetch: Callable[[str, Path], None] | None = None
        """Called with (dataset, clone) after every fetch (the ground-truth check)."""

    # ------------------------------------------------------------------ paths and locks

    def dataset_dir(self, name: str) -> Path:
        return self.base_dir / check_name(name, "dataset name")

    def clone_path(self, name: str) -> Path:
        return self.dataset_dir(name) / "clone"

    def worktree_path(self, name: str, branch: str) -> Path:
        return self.dataset_dir(name) / "worktrees" / check_branch(branch)

    def locate(self, worktree: Path) -> tuple[str, str]:
        """(dataset, branch) of a worktree path under ``base_dir``."""
        path = Path(worktree).resolve()
        try:
            parts = path.relative_to(self.base_dir).parts
        except ValueError:
            parts = ()
        if len(parts) != 3 or parts[1] != "worktrees":
            raise InvalidInput(f"{worktree} is not a dataset worktree under {self.base_dir}")
        return check_name(parts[0], "dataset name"), check_branch(parts[2])

    def lock(self, name: str) -> DatasetLock:
        """The dataset's lock (the same object for every caller in this process)."""
        path = self.dataset_dir(name) / ".lock"
        with _locks_guard:
            lock = _locks.get(path)
            if lock is None:
                lock = _locks[path] = DatasetLock(path)
            return lock

    def existing_clone(self, name: str) -> Path:
        """The dataset's clone; NotFound when it was never cloned."""
        clone = self.clone_path(name)
        if not (clone / ".git").is_dir():
            raise NotFound(f"dataset {name!r} has no local clone yet; it is cloned on first use")
        return clone

    def cloned(self, name: str) -> Path | None:
        """The dataset's clone, or None when it was never cloned."""
        clone = self.clone_path(name)
        return clone if (clone / ".git").is_dir() else None

    def cloned_names(self) -> list[str]:
        """The datasets that have a clone here."""
        if not self.base_dir.is_dir():
            return []
        return sorted(p.name for p in self.base_dir.iterdir() if (p / "clone" / ".git").is_dir())

    # ------------------------------------------------------------------ clone and fetch

    def ensure_clone(self, name: str, url: str, *, offline_ok: bool = False) -> Path:
        """Clone ``url`` on first use (an empty remote is fine), else fetch; return the clone path.

        If the stored clone points at another URL, ``origin`` is switched to ``url``.
        With ``offline_ok``, an existing clone whose fetch fails is used as last fetched
        (work committed there is pushed once the remote is back).
        """
        check_name(name, "dataset name")
        if not check_git_url(url):
            raise InvalidInput(f"invalid git URL {url!r}")
        if self.local_remote_roots is not None:
            check_local_remote(url, self.local_remote_roots)
        with self.lock(name):
            clone = self.clone_path(name)
            if not (clone / ".git").is_dir():
                self._create_clone(clone, url)
                self._origins[clone] = url
                return clone
            if self._origins.get(clone) != url:
                current = self.git.call(["remote", "get-url", "origin"], clone)
                if current.returncode != 0:
                    self.git.run(["remote", "add", "origin", url], clone)
                elif current.stdout.strip() != url:
                    logger.info("dataset %s: remote URL changed to %s", name, redact(url))
                    self.git.run(["remote", "set-url", "origin", url], clone)
                self._origins[clone] = url
            try:
                self.fetch(clone)
            except GitError as exc:
                if not offline_ok:
                    raise
                logger.warning("dataset %s: remote unreachable, working from the last fetch: %s", name, exc.message)
            return clone

    def _create_clone(self, clone: Path, url: str) -> None:
        clone.parent.mkdir(parents=True, exist_ok=True)
        if clone.exists() or clone.is_symlink():
            logger.warning("removing %s: it holds no usable git repository", clone)
            remove(clone)
        tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=clone.parent))
        try:
            self.git.run(["init", "--quiet", f"--initial-branch={_CLONE_HEAD}", str(tmp)])
            self.git.run(["remote", "add", "origin", url], tmp)
            self.fetch(tmp, first=True)
            tmp.rename(clone)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def fetch(self, clone: Path, only: str | None = None, *, first: bool = False) -> None:
        """Fetch origin into ``clone``, every branch or ``only`` that one (no housekeeping after
        it: see the publisher's). The ``first`` fetch of a clone keeps what it receives as one
        pack, as ``git clone`` does, even for a few large objects (git would write each loose)."""
        refspecs = [f"+refs/heads/{only}:refs/remotes/origin/{only}"] if only is not None else []
        keep = ["-c", "fetch.unpackLimit=1"] if first else []
        self.git.run([*keep, "fetch", "--prune", "--quiet", "--no-auto-maintenance", "origin", *refspecs], clone)
        if self.after_fetch is not None:
            self.after_fetch(clone.parent.name, clone)

    def try_fetch(self, clone: Path, only: str | None = None) -> GitError | None:
        """:meth:`fetch`; the error instead of raising it."""
        try:
            self.fetch(clone, only)
        except GitError as exc:
            return exc
        return None
