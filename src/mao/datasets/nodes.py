"""A step's node branch (``<step>-<instance>``), prepared for the step to write in.

The worktree starts where the branch's newest commit is and takes in the agreed state
(``origin/ground-truth`` as fetched), so that what the step writes is a change against it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mao.datasets.core import DatasetCore
from mao.datasets.refs import GROUND_TRUTH, RefInfo, check_branch
from mao.datasets.worktrees import Worktrees
from mao.errors import InvalidInput

__all__ = ["NodeBranches", "Prepared"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A step's output worktree, as :meth:`NodeBranches.prepare` left it."""

    worktree: Path
    pending: list[str]
    """Node branches with commits origin lacks (an earlier push failed)."""
    on_agreed: str | None
    """The ``origin/ground-truth`` commit the worktree is at, if it is at it."""


class NodeBranches:
    """Node branches of the clones of ``core``, each in its worktree (``worktrees``)."""

    def __init__(self, core: DatasetCore, worktrees: Worktrees) -> None:
        self.core = core
        self.refs = core.refs
        self.worktrees = worktrees
        self.git = core.git

    def prepare(self, name: str, url: str, branch: str, *, offline_ok: bool = False) -> Prepared:
        """A clean worktree of ``branch`` for a step to write its output in, after one fetch.

        It starts at ``origin/<branch>``; at the local branch when that has commits
        origin lacks (an earlier push failed: they are kept); else at
        ``origin/ground-truth``; else at an empty root commit. Also told: the node
        branches holding commits origin lacks, and the ``origin/ground-truth`` commit the
        worktree was left at, if it was.
        """
        check_branch(branch)
        if branch == GROUND_TRUTH:
            raise InvalidInput(f"{GROUND_TRUTH} is written only by merges; write a node branch instead")
        with self.core.lock(name):
            clone = self.core.ensure_clone(name, url, offline_ok=offline_ok)
            tidy_at = self.worktrees.take_tidy(self.core.worktree_path(name, branch))
            refs = self.refs.listing(clone)
            pending = self.refs.pending(clone, refs)
            remote_info = refs.get(f"refs/remotes/origin/{branch}")
            local_info = refs.get(f"refs/heads/{branch}")
            remote = remote_info.sha if remote_info else None
            local = local_info.sha if local_info else None
            agreed = self.refs.agreed_in(refs)
            if remote and local and remote != local:
                # an earlier push failed, or the branches diverged: the careful way
                if self.refs.is_ancestor(clone, local, remote):
                    start = remote
                    diverged = False
                else:
                    start = local
                    diverged = not self.refs.is_ancestor(clone, remote, local)
                worktree = self.worktrees.checkout(name, clone, branch, start, exists=True)
                if diverged:
                    self._merge_diverged(name, worktree, branch, start)
                self._take_in_agreed(name, clone, worktree, branch)
                return Prepared(worktree, pending, None)
            tip = remote or local
            take_in = False
            if tip is None:
                tip = agreed or self.refs.empty_root(clone)
            elif agreed is not None:
                relation = self.refs.ancestry(clone, refs, tip, agreed)
                if relation == "a<b":  # the agreed state is ahead: fast-forward to it
                    tip = agreed
                take_in = relation == "apart"
            tidy = local_info if local_info is not None and tidy_at == local_info.sha else None
            worktree = self._move_tidy(name, clone, branch, tidy, tip, refs) or self.worktrees.checkout(
                name, clone, branch, tip, exists=local is not None
            )
            if take_in:
                self._take_in_agreed(name, clone, worktree, branch)
            gt = refs.get(f"refs/remotes/origin/{GROUND_TRUTH}")
            on_agreed = gt is not None and not take_in and tip == gt.sha
            return Prepared(worktree, pending, gt.sha if on_agreed and gt is not None else None)

    def _move_tidy(
        self, name: str, clone: Path, branch: str, local: RefInfo | None, target: str, refs: dict[str, RefInfo]
    ) -> Path | None:
        """Move a worktree left clean by its last commit (``local``, the branch's tip; None: not
        left so) to ``target`` with one ``update-ref``, when ``target`` holds the same files (as
        after its merge into ground-truth); None when it needs a checkout."""
        worktree = self.core.worktree_path(name, branch)
        if local is None or not worktree.is_dir():
            return None
        trees = {info.sha: info.tree for info in refs.values()}
        if target != local.sha and trees.get(target) != local.tree:
            return None
        admin = self.worktrees.admin_dir(clone, worktree)
        if admin is None or self.worktrees.merging(worktree):
            return None
        self.worktrees.repair(admin, worktree)
        if target != local.sha:
            self.git.run(["update-ref", f"refs/heads/{branch}", target, local.sha], clone)
        return worktree

    def _take_in_agreed(self, name: str, clone: Path, worktree: Path, branch: str) -> None:
        """Bring the agreed state (``origin/ground-truth`` as last fetched) into the node branch,
        so that what the step writes next is a change against it.

        Where the node branch holds an earlier change that ground-truth never took (a
        conflict, a lost vote), ground-truth's side wins in the files both touched: that
        change stays in the node branch's history, and the next merge is clean.
        """
        agreed = self.refs.agreed(clone)
        head = self.refs.rev(worktree, "HEAD")
        if agreed is None or head is None or self.refs.is_ancestor(clone, agreed, head):
            return
        if self.refs.is_ancestor(clone, head, agreed):
            self.git.run(["merge", "--quiet", "--ff-only", agreed], worktree)
            return
        text = f"Take {GROUND_TRUTH} {agreed[:12]} into {branch}\n"
        args = ["merge", "--quiet", "--no-ff", "--no-verify", "--allow-unrelated-histories", "-X", "theirs"]
        result = self.git.call([*args, "-m", text, agreed], worktree)
        if result.returncode == 0:
            return
        # what -X theirs cannot settle (one side deleted, the other changed): ground-truth's version
        for path in self.worktrees.conflicted_files(worktree):
            if self.git.call(["cat-file", "-e", f"{agreed}:{path}"], worktree).returncode == 0:
                self.git.run(["--literal-pathspecs", "checkout", agreed, "--", path], worktree)
            else:
                self.git.run(["--literal-pathspecs", "rm", "--quiet", "--force", "--", path], worktree)
        done = self.git.call(["commit", "--quiet", "--no-verify", "--no-edit", "--cleanup=strip"], worktree)
        if done.returncode != 0:
            self.git.call(["merge", "--abort"], worktree)
            self.worktrees.clean(worktree, branch, head)
            logger.warning("dataset %s: cannot take %s into %s: %s", name, GROUND_TRUTH, branch, done.stderr.strip())

    def _merge_diverged(self, name: str, worktree: Path, branch: str, local: str) -> None:
        """Local and origin both have commits the other lacks: keep both by merging origin in."""
        logger.warning("dataset %s: branch %s diverged from origin; merging origin into it", name, branch)
        result = self.git.call(
            ["merge", "--quiet", "--no-edit", "--no-verify", f"refs/remotes/origin/{branch}"], worktree
        )
        if result.returncode != 0:
            self.git.call(["merge", "--abort"], worktree)
            self.worktrees.clean(worktree, branch, local)
            logger.warning(
                "dataset %s: branch %s cannot merge origin/%s; keeping the local commits, its push will fail",
                name,
                branch,
                branch,
            )
