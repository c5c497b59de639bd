"""The git worktrees of the clones: one per branch written here, checked out clean, put back
when a tool broke their ``.git`` link, reset after a crash.

A tool writes in a worktree: its ``.git`` file may be gone, a directory, a link or a pipe
when the step ends. It is only ever read as a regular file that is not a link, and
written as a new file.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from mao.datasets.core import DatasetCore
from mao.datasets.files import read_own_file, remove, remove_stale_locks
from mao.datasets.refs import check_branch
from mao.validation import check_name

__all__ = ["Worktrees"]

logger = logging.getLogger(__name__)


class Worktrees:
    """Worktrees of the clones of ``core``; the caller holds the dataset's lock."""

    def __init__(self, core: DatasetCore) -> None:
        self.core = core
        self.git = core.git
        self._tidy: dict[Path, str] = {}  # worktree -> the commit its last commit left it clean at

    # ------------------------------------------------------------------ tidy marks

    def mark_tidy(self, worktree: Path, sha: str) -> None:
        """Everything in ``worktree`` is committed as ``sha``: the next checkout may be skipped."""
        self._tidy[worktree] = sha

    def take_tidy(self, worktree: Path) -> str | None:
        """The commit ``worktree`` was left clean at, if nothing touched it since; forgets it."""
        return self._tidy.pop(worktree, None)

    # ------------------------------------------------------------------ the .git link

    def admin_dir(self, clone: Path, worktree: Path) -> Path | None:
        """The ``.git/worktrees/<id>`` directory registered for ``worktree``, if any."""
        admin_root = clone / ".git" / "worktrees"
        if not admin_root.is_dir():
            return None
        expected = worktree / ".git"
        for admin in admin_root.iterdir():
            try:
                gitdir = (admin / "gitdir").read_text().strip()
            except OSError:
                continue
            if Path(gitdir) == expected:
                return admin
        return None

    def repair(self, admin: Path, worktree: Path) -> None:
        """Make ``worktree/.git`` point at ``admin`` again (a tool may have replaced it, with
        anything: a link, a directory, a pipe). It is written as a new file, never through a link."""
        dotgit = worktree / ".git"
        expected = f"gitdir: {admin}\n"
        if read_own_file(dotgit) == expected.strip():
            return
        if dotgit.is_symlink() and dotgit.resolve() == admin.resolve():
            dotgit.unlink()  # git-annex links a worktree's .git to its admin directory
        elif dotgit.exists() or dotgit.is_symlink():
            logger.warning("replacing %s written by a tool with the worktree link", dotgit)
            remove(dotgit)
        fd = os.open(dotgit, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(expected)

    @staticmethod
    def merging(worktree: Path) -> bool:
        """Whether ``worktree`` is inside a merge (or is not a linked worktree we can read)."""
        text = read_own_file(worktree / ".git")
        if text is None or not text.startswith("gitdir: "):
            return True
        admin = Path(text[len("gitdir: ") :])
        return any((admin / state).exists() for state in ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD"))

    # ------------------------------------------------------------------ checkout

    def clean(self, worktree: Path, branch: str, sha: str) -> None:
        """Check ``branch`` out at ``sha`` in ``worktree`` with nothing else in it."""
        if self.merging(worktree):
            self.git.run(["reset", "--quiet", "--hard"], worktree, check=False)  # ends the half-done merge
        self.git.run(["checkout", "--quiet", "--force", "-B", branch, sha], worktree)
        self.git.run(["clean", "--quiet", "-ffdx"], worktree)

    def checkout(self, name: str, clone: Path, branch: str, sha: str, *, exists: bool | None = None) -> Path:
        """The worktree of ``branch``, created if needed, clean and at ``sha``.

        Worktrees are created locked, so ``git worktree prune`` (run by gc, or by
        hand) never drops one whose ``.git`` file a tool deleted mid-run. ``exists``
        says whether the local branch exists, when the caller knows.
        """
        worktree = self.core.worktree_path(name, branch)
        admin = self.admin_dir(clone, worktree)
        if admin is not None:
            worktree.mkdir(parents=True, exist_ok=True)
            self.repair(admin, worktree)
        else:
            self._drop_stale_registrations(clone, branch)
            if worktree.exists() or worktree.is_symlink():
                remove(worktree)
            worktree.parent.mkdir(parents=True, exist_ok=True)
            add = ["worktree", "add", "--quiet", "--no-checkout", "--lock"]
            if exists is None:
                exists = self.core.refs.rev(clone, f"refs/heads/{branch}") is not None
            if not exists:
                self.git.run([*add, "-b", branch, str(worktree), sha], clone)
            else:
                self.git.run([*add, str(worktree), branch], clone)
        self.clean(worktree, branch, sha)
        return worktree

    def _drop_stale_registrations(self, clone: Path, branch: str) -> None:
        """Forget worktrees of ``branch`` whose directory is gone (e.g. the base directory moved)."""
        admin_root = clone / ".git" / "worktrees"
        if not admin_root.is_dir():
            return
        for admin in admin_root.iterdir():
            try:
                head = (admin / "HEAD").read_text().strip()
                gitdir = Path((admin / "gitdir").read_text().strip())
            except OSError:
                continue
            if head == f"ref: refs/heads/{branch}" and not gitdir.parent.is_dir():
                logger.warning("forgetting worktree %s of branch %s: its directory is gone", gitdir.parent, branch)
                shutil.rmtree(admin)

    def conflicted_files(self, worktree: Path) -> list[str]:
        """The paths a merge in ``worktree`` left conflicted."""
        out = self.git.run(["diff", "--name-only", "--diff-filter=U", "-z"], worktree, check=False)
        return sorted({path for path in out.split("\0") if path})

    # ------------------------------------------------------------------ recovery

    def reset(self, name: str | None = None, branch: str | None = None) -> list[Path]:
        """Abort half-done merges and reset + clean worktrees (all, one dataset's, or one branch's).

        Meant for start-up after a crash: stale git lock files are removed too.
        Returns the worktrees that were reset.
        """
        if branch is not None:
            check_branch(branch)
        names = [check_name(name, "dataset name")] if name is not None else self.core.cloned_names()
        done: list[Path] = []
        for dataset in names:
            with self.core.lock(dataset):
                clone = self.core.cloned(dataset)
                if clone is None:
                    continue
                remove_stale_locks(clone / ".git")
                admin_root = clone / ".git" / "worktrees"
                admins = sorted(admin_root.iterdir()) if admin_root.is_dir() else []
                for admin in admins:
                    try:
                        worktree = Path((admin / "gitdir").read_text().strip()).parent
                    except OSError:
                        continue
                    if not worktree.is_dir() or (branch is not None and worktree.name != branch):
                        continue
                    self.repair(admin, worktree)
                    if (admin / "MERGE_HEAD").exists():
                        self.git.call(["merge", "--abort"], worktree)
                    self.git.run(["reset", "--quiet", "--hard"], worktree)
                    self.git.run(["clean", "--quiet", "-ffdx"], worktree)
                    done.append(worktree)
                self.git.run(["worktree", "prune"], clone)
        return done
