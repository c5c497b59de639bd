"""Datasets as git repositories: one local clone per dataset, one worktree per branch.

:class:`DatasetManager` is what the rest of the project calls. It holds no logic of its
own: it builds the parts below around one :class:`~mao.datasets.core.DatasetCore` and
hands each call to the part that owns it.

==========================  ===========================================================
part                        owns
==========================  ===========================================================
``core.DatasetCore``        paths, the per-dataset lock, cloning and fetching, refs
``worktrees.Worktrees``     one worktree per branch: checkout, repair, reset after a crash
``nodes.NodeBranches``      a step's node branch prepared to write in (``prepare_step``)
``publish.Publisher``       the commit of a step's output, pushes of node branches
``groundtruth.GroundTruth`` merges into ground-truth (rules in ``attributes``, conflicts
                            settled in the index by ``settle``)
``changes.Changes``         what a commit changed (its id for a ballot), tally commits
``history.History``         a branch's history with trailers, a branch's tip, one file
``inputs.InputViews``       input datasets as read-only views moved from commit to commit
``bare.BareRepositories``   bare repositories served by this instance
``annex.Annex``             large files through git-annex, for datasets that ask for it
==========================  ===========================================================

A step writes its own node branch (``<step>-<instance>``) in its worktree, so two
pipelines writing different branches of one dataset never share a working tree or an
index. ``ground-truth`` is only ever written by merges and tallies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mao.datasets.annex import Annex
from mao.datasets.attributes import MergeAttributes
from mao.datasets.bare import BareRepositories
from mao.datasets.changes import Changes, Entry, TallyCommit
from mao.datasets.core import DatasetCore
from mao.datasets.git import Git
from mao.datasets.groundtruth import GroundTruth, MergeSource, Rider
from mao.datasets.history import History
from mao.datasets.inputs import InputViews
from mao.datasets.nodes import NodeBranches, Prepared
from mao.datasets.publish import Publisher
from mao.datasets.refs import GROUND_TRUTH, check_branch
from mao.datasets.retries import PushRetries
from mao.datasets.signing import Signature, SignatureReader
from mao.datasets.worktrees import Worktrees
from mao.errors import GitError

__all__ = ["GROUND_TRUTH", "DatasetManager", "MergeSource", "Prepared", "check_branch"]

logger = logging.getLogger(__name__)


class DatasetManager:
    """Clones, branches, commits, pushes and merges git datasets.

    ``push_retries`` is the number of extra attempts after a failed push; attempt
    ``n`` waits ``retry_delay * 2**(n-1)`` seconds first; ``on_push_retry`` is told
    (dataset, branch, attempt) before a push is tried again.
    """

    def __init__(
        self,
        git: Git,
        base_dir: Path,
        bare_dir: Path,
        push_retries: int = 3,
        retry_delay: float = 1.0,
        local_remote_roots: Sequence[Path] | None = None,
        on_push_retry: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self._retries = PushRetries(push_retries, retry_delay, on_push_retry)
        self._core = DatasetCore(git, base_dir, local_remote_roots=local_remote_roots)
        self._worktrees = Worktrees(self._core)
        self._nodes = NodeBranches(self._core, self._worktrees)
        self._publisher = Publisher(self._core, self._worktrees, self._retries)
        self._ground_truth = GroundTruth(self._core, self._worktrees, self._retries, MergeAttributes(git))
        self._changes = Changes(self._core, self._retries)
        self._history = History(self._core)
        self._annex = Annex(self._core)
        self._inputs = InputViews(self._core, self._annex)
        self._bare = BareRepositories(git, bare_dir)
        self._signatures = SignatureReader(git)

    # ------------------------------------------------------------------ settings

    @property
    def git(self) -> Git:
        return self._core.git

    @property
    def base_dir(self) -> Path:
        return self._core.base_dir

    @property
    def bare_dir(self) -> Path:
        return self._bare.bare_dir

    @property
    def local_remote_roots(self) -> Sequence[Path] | None:
        """Where a local-path remote may be (None: anywhere); checked before cloning."""
        return self._core.local_remote_roots

    @property
    def push_retries(self) -> int:
        return self._retries.retries

    @property
    def retry_delay(self) -> float:
        return self._retries.delay

    @retry_delay.setter
    def retry_delay(self, value: float) -> None:
        self._retries.delay = value

    # ------------------------------------------------------------------ clones and paths

    def clone_path(self, name: str) -> Path:
        return self._core.clone_path(name)

    def worktree_path(self, name: str, branch: str) -> Path:
        return self._core.worktree_path(name, branch)

    def ensure_clone(self, name: str, url: str, *, offline_ok: bool = False) -> Path:
        """Clone ``url`` on first use, else fetch; the clone's path (see :meth:`DatasetCore.ensure_clone`)."""
        return self._core.ensure_clone(name, url, offline_ok=offline_ok)

    def reset_worktrees(self, name: str | None = None, branch: str | None = None) -> list[Path]:
        """Abort half-done merges and reset + clean worktrees (all, one dataset's, or one branch's)."""
        return self._worktrees.reset(name, branch)

    def create_bare(self, name: str) -> Path:
        """Create an empty bare repository ``bare_dir/<name>.git`` whose default branch is ground-truth."""
        return self._bare.create(name)

    # ------------------------------------------------------------------ a step's output

    def prepare_step(
        self, name: str, url: str, branch: str, *, offline_ok: bool = False, largefiles: str | None = None
    ) -> Prepared:
        """A clean worktree of node ``branch`` to write in, with what the fetch told (see :meth:`NodeBranches.prepare`).

        With ``largefiles`` (git-annex's ``annex.largefiles`` expression), the files it matches
        are annexed when committed (see :mod:`mao.datasets.annex`)."""
        prepared = self._nodes.prepare(name, url, branch, offline_ok=offline_ok)
        if largefiles is not None:
            self._annex.configure(name, prepared.worktree, largefiles)
        return prepared

    def prepare_output(self, name: str, url: str, branch: str, *, offline_ok: bool = False) -> Path:
        """The worktree of :meth:`prepare_step`."""
        return self._nodes.prepare(name, url, branch, offline_ok=offline_ok).worktree

    def commit_output(self, worktree: Path, message: str, trailers: dict[str, str]) -> str | None:
        """Commit everything in ``worktree`` (ignored files too) with trailers; None if nothing changed.

        Of an annexed dataset, the content of the annexed files is copied to the remote
        after the commit (GitError if it could not be: the commit is kept, the next push sends it)."""
        sha = self._publisher.commit(worktree, message, trailers)
        if sha is not None:
            self._annex.upload(self._core.locate(worktree)[0])
        return sha

    def push(self, name: str, branch: str) -> bool:
        """Push ``branch`` to origin; False (the commits stay local) if every attempt failed."""
        return self._upload(name) and self._publisher.push(name, branch)

    def _upload(self, name: str) -> bool:
        """Annexed content origin lacks sent to it (nothing to do for a plain dataset); False if it could not be."""
        try:
            self._annex.upload(name)
        except GitError as exc:
            logger.warning("dataset %s: annexed content not sent to the remote: %s", name, exc.message)
            return False
        return True

    def pending_pushes(self, name: str) -> list[str]:
        """Local node branches holding commits that origin does not have, as of the last fetch."""
        return self._publisher.pending(name)

    def push_branches(self, name: str, branches: Sequence[str]) -> dict[str, bool]:
        """Push each of ``branches`` (with retries); branch -> pushed."""
        if branches and not self._upload(name):
            return dict.fromkeys(branches, False)
        return self._publisher.push_branches(name, branches)

    def push_pending(self, name: str) -> dict[str, bool]:
        """Push every branch :meth:`pending_pushes` lists; branch -> pushed."""
        return self._publisher.push_branches(name, self._publisher.pending(name))

    # ------------------------------------------------------------------ ground-truth

    def merge_to_ground_truth(
        self, name: str, branch: str, message: str, trailers: dict[str, str], source: MergeSource | None = None
    ) -> str:
        """Merge node ``branch`` into ground-truth and push both; the merge commit (see :meth:`GroundTruth.merge`)."""
        return self._ground_truth.merge(name, branch, message, trailers, source)

    def merge_train(
        self,
        name: str,
        branch: str,
        message: str,
        trailers: dict[str, str],
        riders: list[Rider],
        commit: str | None = None,
        *,
        fetch: bool = True,
    ) -> tuple[str, dict[str, str]]:
        """Merge node ``branch``, then the riders' node commits, into ground-truth and push once
        (see :meth:`GroundTruth.merge_train`)."""
        return self._ground_truth.merge_train(name, branch, message, trailers, riders, commit, fetch=fetch)

    def pack_node(self, name: str, commit: str, limit: int) -> tuple[str, bytes] | None:
        """The objects of node ``commit`` that ground-truth (as last fetched) lacks, packed to
        travel with a merge train's post: (that ground-truth commit, the pack), or None when
        there is no ground-truth yet or the pack would pass ``limit`` bytes (see :mod:`mao.datasets.packs`)."""
        with self._core.lock(name):
            clone = self._core.existing_clone(name)
            onto = self._core.refs.rev(clone, f"refs/remotes/origin/{GROUND_TRUTH}")
            if onto is None:
                return None
            pack = self._ground_truth.packs.pack(clone, commit, onto, limit)
        return (onto, pack) if pack is not None else None

    def change_of(self, name: str, commit: str) -> list[Entry]:
        """The entries ``commit`` changed against its first parent (everything, for a root commit)."""
        return self._changes.change_of(name, commit)

    def find_tally(self, name: str, pipeline: str, step: str, slot: str) -> dict[str, Any] | None:
        """The tally commit of (pipeline, step, slot) in ``origin/ground-truth`` after a fetch, or None."""
        return self._changes.find_tally(name, pipeline, step, slot)

    def write_tally(self, name: str, tally: TallyCommit) -> tuple[str, bool]:
        """Apply the change of node ``tally.commit`` on top of ground-truth as one tally commit; (commit, created)."""
        return self._changes.write_tally(name, tally)

    # ------------------------------------------------------------------ reading

    def log(self, name: str, url: str, ref: str = GROUND_TRUTH, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` commits of ``origin/<ref>`` (or from commit ``ref``), newest first, with trailers."""
        return self._history.log(name, url, ref, limit)

    def head(self, name: str, ref: str) -> str | None:
        """The newest commit known locally for branch ``ref`` (no fetch), or None."""
        return self._history.head(name, ref)

    def read_agreed_file(self, name: str, url: str, path: str, max_bytes: int) -> bytes:
        """The content of ``path`` in the dataset's ``ground-truth`` (as of a fresh fetch)."""
        return self._history.read_agreed_file(name, url, path, max_bytes)

    def acquire_input(
        self, name: str, url: str, ref: str = GROUND_TRUTH, *, annexed: bool = False, paths: list[str] | None = None
    ) -> tuple[Path, str | None]:
        """A read-only view of ``origin/<ref>`` after a fetch: (directory, commit); give it back
        with :meth:`release_input`. Of an ``annexed`` dataset, only the content of the files
        ``paths`` match (all: None) is fetched (see :meth:`InputViews.acquire`)."""
        return self._inputs.acquire(name, url, ref, annexed=annexed, paths=paths)

    # ------------------------------------------------------------------ signatures

    def on_fetch(self, check: Callable[[str, Path], None] | None) -> None:
        """Call ``check(dataset, clone)`` after every fetch, under the dataset's lock (the
        ground-truth check: it may move ``refs/remotes/origin/ground-truth`` back)."""
        self._core.after_fetch = check

    def signatures(self, name: str, commits: Sequence[str], *, allowed: str, revoked: str = "") -> list[Signature]:
        """The signatures of ``commits`` of the dataset's clone, read in one git call against the
        allowed-signers text ``allowed`` and the revoked keys ``revoked``."""
        clone = self._core.existing_clone(name)
        return self._signatures.read(clone, list(commits), allowed=allowed, revoked=revoked)

    def existing_commits(self, name: str, commits: Sequence[str]) -> set[str]:
        """Those of ``commits`` the dataset's clone holds."""
        return self._signatures.existing(self._core.existing_clone(name), commits)

    def on_branch(self, name: str, commit: str, branch: str) -> bool:
        """Whether ``commit`` is on ``origin/<branch>`` as last fetched."""
        clone = self._core.existing_clone(name)
        tip = self._core.refs.rev(clone, f"refs/remotes/origin/{check_branch(branch)}")
        return tip is not None and self._core.refs.is_ancestor(clone, commit, tip)

    def release_input(self, name: str, path: Path) -> None:
        """A step is done with the input view at ``path``."""
        self._inputs.release(name, path)
