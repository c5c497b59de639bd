"""Publishing a step's output: the commit of everything it wrote (trailers in the message),
and the push of its node branch, tried again with a growing wait.

A failed push keeps the commit: the branch is pending until a later push sends it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from mao.datasets.core import DatasetCore
from mao.datasets.refs import check_branch
from mao.datasets.retries import PushRetries
from mao.datasets.trailers import format_message
from mao.datasets.worktrees import Worktrees
from mao.errors import GitError, NotFound

__all__ = ["HOUSEKEEPING_EVERY", "Publisher"]

logger = logging.getLogger(__name__)

#: Commits in a clone between two runs of ``git maintenance run --auto`` there.
HOUSEKEEPING_EVERY = 20

# The summary line of ``git commit`` (full ids with core.abbrev=40): ``[branch (root-commit) <sha>] subject``.
_COMMITTED_RE = re.compile(r"^\[[^\]]*?\b([0-9a-f]{40})\]", re.MULTILINE)
_EMBEDDED_RE = re.compile(r"adding embedded git repository: (.+)$", re.MULTILINE)


class Publisher:
    """Commits in the worktrees of ``core``'s clones and pushes their node branches."""

    def __init__(self, core: DatasetCore, worktrees: Worktrees, retries: PushRetries) -> None:
        self.core = core
        self.worktrees = worktrees
        self.retries = retries
        self.git = core.git
        self._commits_since_housekeeping: dict[Path, int] = {}

    # ------------------------------------------------------------------ commit

    def commit(self, worktree: Path, message: str, trailers: dict[str, str]) -> str | None:
        """Commit everything in ``worktree`` (ignored files too) with trailers; None if nothing changed."""
        name, branch = self.core.locate(worktree)
        with self.core.lock(name):
            clone = self.core.existing_clone(name)
            path = self.core.worktree_path(name, branch)
            self.worktrees.take_tidy(path)
            admin = self.worktrees.admin_dir(clone, path)
            if admin is None or not path.is_dir():
                raise NotFound(f"no worktree for branch {branch!r} of dataset {name!r}; prepare the output first")
            self.worktrees.repair(admin, path)
            text = format_message(message, trailers)
            added = self.git.call(["add", "--all", "--force"], path)
            if added.returncode != 0:
                exc = self.git.error(["add"], path, added.returncode, added.stderr)
                raise nested_git_error(name, path) or exc
            nested = _EMBEDDED_RE.findall(added.stderr)
            if nested:
                logger.warning(
                    "dataset %s: %s hold their own git repository; only their commit id is recorded, not their files",
                    name,
                    ", ".join(n.strip() for n in nested),
                )
            args = [
                *("-c", "core.abbrev=40", "-c", "maintenance.auto=false"),  # full ids; housekeeping below
                *("commit", "--no-verify", "--cleanup=whitespace", "--file=-"),
            ]
            done = self.git.call(args, path, input=text)
            if done.returncode == 1 and "nothing to commit" in done.stdout:
                return None
            if done.returncode != 0:
                raise self.git.error(args, path, done.returncode, done.stderr or done.stdout)
            found = _COMMITTED_RE.search(done.stdout)
            sha = found.group(1) if found else self.git.run(["rev-parse", "HEAD"], path).strip()
            self.worktrees.mark_tidy(path, sha)  # everything in it is committed: the next prepare may skip the checkout
            self._housekeeping(clone)
            return sha

    def _housekeeping(self, clone: Path) -> None:
        """``git maintenance run --auto`` (packing loose objects when there are many) once every
        ``HOUSEKEEPING_EVERY`` commits, instead of after every fetch and commit as git would."""
        count = self._commits_since_housekeeping.get(clone, 0) + 1
        if count < HOUSEKEEPING_EVERY:
            self._commits_since_housekeeping[clone] = count
            return
        self._commits_since_housekeeping[clone] = 0
        result = self.git.call(["maintenance", "run", "--auto", "--quiet"], clone)
        if result.returncode != 0:
            logger.warning("housekeeping of %s failed: %s", clone, result.stderr.strip())

    # ------------------------------------------------------------------ push

    def push(self, name: str, branch: str) -> bool:
        """Push ``branch`` to origin; False (the commits stay local) if every attempt failed."""
        check_branch(branch)
        with self.core.lock(name):
            clone = self.core.existing_clone(name)
            if self.core.refs.rev(clone, f"refs/heads/{branch}") is None:
                raise NotFound(f"dataset {name!r} has no local branch {branch!r}")
        return self._push_ref(name, branch) is None

    def _push_ref(self, name: str, branch: str) -> GitError | None:
        """Push ``branch`` with retries; return the last error, or None when it went through."""
        refspec = f"refs/heads/{branch}:refs/heads/{branch}"
        attempts = self.retries.attempts
        last: GitError | None = None
        for attempt in range(attempts):
            if attempt:
                self.retries.wait(name, branch, attempt)
            with self.core.lock(name):
                clone = self.core.existing_clone(name)
                try:
                    self.git.run(["push", "--quiet", "--no-verify", "origin", refspec], clone)
                    return None
                except GitError as exc:
                    last = exc
                    logger.warning(
                        "dataset %s: push of %s failed (attempt %d of %d): %s",
                        name,
                        branch,
                        attempt + 1,
                        attempts,
                        exc.message,
                    )
        return last

    def pending(self, name: str) -> list[str]:
        """Local node branches holding commits that origin does not have, as of the last fetch."""
        if self.core.cloned(name) is None:
            return []
        with self.core.lock(name):
            clone = self.core.existing_clone(name)
            return self.core.refs.pending(clone, self.core.refs.listing(clone))

    def push_branches(self, name: str, branches: Sequence[str]) -> dict[str, bool]:
        """Push each of ``branches`` (with retries); branch -> pushed."""
        return {branch: self.push(name, branch) for branch in branches}


def nested_git_error(name: str, worktree: Path) -> GitError | None:
    """One clear line when the tool left a ``.git`` of its own inside its output."""
    nested = sorted(str(p.relative_to(worktree)) for p in worktree.rglob(".git") if p.parent != worktree)
    if not nested:
        return None
    return GitError(
        f"the tool wrote a git repository into the output of dataset {name!r} at {', '.join(nested[:5])}"
        f"{' …' if len(nested) > 5 else ''}: a tool must write plain files and delete any .git it creates "
        "(e.g. clone with --depth 1 into a temporary directory, or remove the .git folder before exiting)",
        details={"nested": nested},
    )
