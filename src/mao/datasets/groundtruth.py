"""Writing ``ground-truth``: node branches merged in (policy ``merge``), with a retry when the push loses a race.

A merge is written with no working tree: ``merge-tree`` merges (a fast-forwardable merge
needs not even that), its conflicts are settled in a temporary index
(:mod:`mao.datasets.settle`) and ``commit-tree`` writes the commit. Only a merge of a file
the dataset's attributes merge otherwise (``merge=union``, or a single value git merged line
by line), or a conflict that cannot be settled so, is done in the ground-truth worktree,
where its conflicts are settled in that worktree's index.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mao.datasets.attributes import MergeAttributes, MergeRule
from mao.datasets.core import DatasetCore
from mao.datasets.packs import Carried, NodePacks
from mao.datasets.refs import GROUND_TRUTH, RefInfo, check_branch
from mao.datasets.retries import PushRetries
from mao.datasets.settle import Settler, parse_merge_tree
from mao.datasets.trailers import format_message
from mao.datasets.worktrees import Worktrees
from mao.errors import GitError, InvalidInput, MergeConflict, NotFound

__all__ = ["SUPERSEDED", "GroundTruth", "MergeSource", "Rider"]

logger = logging.getLogger(__name__)

SUPERSEDED = "Mao-Superseded"
"""The trailer of a merge commit naming the files where the node's newer change replaced ground-truth's."""


@dataclass(frozen=True)
class MergeSource:
    """What the caller knows of the node commit it merges.

    ``commit`` is the node commit to merge (None: the branch's newest known commit);
    ``fetched`` says the clone was fetched moments ago, so the first attempt works from
    that fetch and only a refused push fetches again; ``onto`` says ``commit`` was
    committed directly on that ``origin/ground-truth`` commit (as fetched), so the merge
    takes the node's files as they are, with no ref listing."""

    commit: str | None = None
    fetched: bool = False
    onto: str | None = None


@dataclass(frozen=True)
class Rider:
    """A node commit of another instance that waits for its merge (a merge train's rider),
    merged with its own ``message`` and ``trailers``: its node ``branch`` is on the remote, or
    its objects come with it as a ``pack`` of what ground-truth commit ``onto`` lacks
    (:mod:`mao.datasets.packs`)."""

    branch: str
    commit: str
    message: str
    trailers: dict[str, str]
    pack: bytes | None = None
    onto: str | None = None


@dataclass(frozen=True)
class _Merge:
    """One attempt's merge of node commit ``source`` of ``branch`` into ground-truth commit
    ``base`` (``first``: ground-truth is not on the remote yet), in the dataset's ``clone``;
    ``node_ref`` is the local node branch pushed with it (None: there is none)."""

    name: str
    clone: Path
    branch: str
    node_ref: str | None
    source: str
    base: str
    first: bool
    message: str
    trailers: dict[str, str]


class GroundTruth:
    """Merges node branches of ``core``'s clones into ground-truth and pushes both at once."""

    def __init__(
        self, core: DatasetCore, worktrees: Worktrees, retries: PushRetries, attributes: MergeAttributes
    ) -> None:
        self.core = core
        self.refs = core.refs
        self.worktrees = worktrees
        self.retries = retries
        self.attributes = attributes
        self.settler = Settler(core.git, attributes)
        self.packs = NodePacks(core.git)
        self.git = core.git
        self._trees: dict[str, str] = {}
        """The trees of the merge commits this instance made lately (a train's next merge builds on one)."""
        self._chain_at: dict[str, str] = {}
        """While a train merges into a dataset (under its lock): the commit its ground-truth
        worktree is clean at, after a merge made there (the next one needs no checkout)."""

    def merge(
        self, name: str, branch: str, message: str, trailers: dict[str, str], source: MergeSource | None = None
    ) -> str:
        """Merge node ``branch`` into ``ground-truth`` with a merge commit and push both; return the merge commit.

        The node branch and ground-truth go to origin in one atomic push, so the node's
        commits are on the remote whenever its merge is. ``source`` says which node commit
        is merged and what the caller fetched (see :class:`MergeSource`).

        The first merge creates ground-truth from the empty root commit. Files both sides
        changed since they last agreed are settled without stopping anyone, by the rules
        ground-truth's ``.gitattributes`` declare (:mod:`mao.datasets.attributes`): lines
        of a ``merge=union`` file are all kept; rows both sides appended to a regular file
        are all kept (ground-truth's first) unless it is ``-merge`` or ``binary``; anything
        else, a symbolic link or gitlink included, takes the node's version, the newest
        change, and the merge commit names those files in a ``Mao-Superseded`` trailer
        (ground-truth's version stays in its history). They are settled in the index: no
        file is written, so never through a link a tool committed. If git still cannot
        merge, the node branch alone is pushed, the ground-truth worktree is left clean
        and MergeConflict names the files. A push refused because ground-truth moved
        meanwhile (or any failed push) is retried from a fresh fetch; when every attempt
        failed, nothing was pushed, the node's commits stay local (the next run pushes
        them) and GitError is raised. The caller holds the federation lock.
        """
        check_branch(branch)
        if branch == GROUND_TRUTH:
            raise InvalidInput(f"cannot merge {GROUND_TRUTH} into itself")
        source = source or MergeSource()

        def attempt(number: int) -> str | GitError:
            with self.core.lock(name):
                clone = self.core.existing_clone(name)
                if number == 0 and source.fetched:  # from the caller's fetch first; refused: fetch at once
                    if source.onto is not None and source.commit is not None:
                        merged = self._merge_onto(clone, message, trailers, source.commit, source.onto)
                        if self.push_merge(clone, f"refs/heads/{branch}", merged) is None:
                            return merged
                    else:
                        merged, error = self._merge_once(name, branch, message, trailers, source.commit)
                        if error is None:
                            return merged
                error = self.core.try_fetch(clone)  # the remote did not answer: tried again like a refused push
                if error is not None:
                    return error
                merged, error = self._merge_once(name, branch, message, trailers, source.commit)
                return merged if error is None else error

        return self.retries.until_done(name, GROUND_TRUTH, f"merged {branch} into {GROUND_TRUTH}", attempt)

    def push_merge(self, clone: Path, node_ref: str | None, merged: str | None) -> GitError | None:
        """One atomic push of the node branch and the merge commit as ground-truth; the error, or None."""
        refspecs = [f"{node_ref}:{node_ref}"] if node_ref is not None else []
        if merged is not None:
            refspecs.append(f"{merged}:refs/heads/{GROUND_TRUTH}")
        try:
            self.git.run(["push", "--quiet", "--no-verify", "--atomic", "origin", *refspecs], clone)
        except GitError as exc:
            return exc
        return None

    def _merge_once(
        self, name: str, branch: str, message: str, trailers: dict[str, str], source: str | None = None
    ) -> tuple[str, GitError | None]:
        """One merge and push, from the clone as last fetched: (merge commit, the push's error or None)."""
        clone = self.core.existing_clone(name)
        merge, known = self._own_merge(clone, name, branch, message, trailers, source)
        merged = self._merge_commit(merge, known)
        if merged == merge.base and not merge.first:
            return merged, None
        error = self.push_merge(clone, merge.node_ref, merged)
        if error is not None:
            self._reset_worktree(name, merge.base)
        return merged, error

    def _own_merge(
        self, clone: Path, name: str, branch: str, message: str, trailers: dict[str, str], source: str | None
    ) -> tuple[_Merge, dict[str, RefInfo]]:
        """The merge of node ``branch`` (commit ``source``, or its newest) into ground-truth as
        last fetched, and the refs listing it was read from."""
        refs = self.refs.listing(clone)
        local = refs.get(f"refs/heads/{branch}")
        if source is None:
            source = self.refs.tip(clone, branch)
        if source is None:
            raise NotFound(f"dataset {name!r} has no branch {branch!r} to merge")
        node_ref = f"refs/heads/{branch}" if local is not None else None
        remote_gt = refs.get(f"refs/remotes/origin/{GROUND_TRUTH}")
        first = remote_gt is None
        base = remote_gt.sha if remote_gt else (self.refs.agreed_in(refs) or self.refs.empty_root(clone))
        known = {info.sha: info for info in refs.values()}
        return _Merge(name, clone, branch, node_ref, source, base, first, message, trailers), known

    def _merge_commit(self, merge: _Merge, known: dict[str, RefInfo]) -> str:
        """The commit that merges ``merge.source`` into ``merge.base`` (not pushed): ``base``
        itself when the node commit is part of it already. MergeConflict when git cannot
        merge (the node's own ref is then pushed alone)."""
        name, clone, base, source = merge.name, merge.clone, merge.base, merge.source
        source_info = known.get(source)
        base_parents = known[base].parents if base in known else ()
        if not merge.first and (source == base or source in base_parents):
            logger.info("dataset %s: %s is already part of %s", name, merge.branch, GROUND_TRUTH)
            return base
        superseded: list[str] = []
        if source_info is not None and base in source_info.parents:
            tree = source_info.tree  # ground-truth is the node's parent: the merge takes the node's tree
        else:
            merged = self._merge_tree(merge)
            if merged is None:
                return self._merge_in_worktree(merge)
            tree, superseded = merged
            same_tree = not merge.first and tree == self._tree_of(clone, base, known)
            if same_tree and self.refs.is_ancestor(clone, source, base):
                logger.info("dataset %s: %s is already part of %s", name, merge.branch, GROUND_TRUTH)
                return base
        trailers = {**merge.trailers, SUPERSEDED: ", ".join(superseded)} if superseded else merge.trailers
        if superseded:
            self._log_superseded(merge, superseded)
        text = format_message(merge.message, trailers)
        commit = self.git.run(["commit-tree", tree, "-p", base, "-p", source], clone, input=text).strip()
        if len(self._trees) > 1000:
            self._trees.clear()
        self._trees[commit] = tree
        return commit

    def _tree_of(self, clone: Path, commit: str, known: dict[str, RefInfo]) -> str:
        """The tree of ``commit``: as listed, as this instance made it, or as git reads it."""
        if commit in known:
            return known[commit].tree
        return self._trees.get(commit) or self.git.run(["rev-parse", f"{commit}^{{tree}}"], clone).strip()

    def _merge_tree(self, merge: _Merge) -> tuple[str, list[str]] | None:
        """The merged tree git writes with no worktree (``merge-tree``), its conflicts settled
        in a temporary index, and the paths that took the node's side; None when the merge
        needs the worktree: a file the dataset's attributes merge otherwise than the built-in
        rules (``merge=union``, or a single value git merged line by line), or a conflict
        that cannot be settled so."""
        clone, base, source = merge.clone, merge.base, merge.source
        result = self.git.call(["merge-tree", "--write-tree", "-z", base, source], clone, exact=True)
        if result.returncode not in (0, 1):
            return None
        tree, conflicts, combined = parse_merge_tree(result.stdout)
        if result.returncode == 1 and not conflicts:  # a conflict with no file to settle (a split rename)
            return None
        if not conflicts:  # git says what it merged line by line only alongside conflicts
            combined = set(self.attributes.combined(clone, tree, base, source))
        paths = sorted({*combined, *conflicts})
        rules = self.attributes.rules(clone, base, paths)
        for path, rule in rules.items():
            # git's union driver; or a single value merge-tree (reading no attributes) merged line by line
            if rule == MergeRule.UNION or (rule == MergeRule.SINGLE and path not in conflicts):
                return None
        if not conflicts:
            return tree, []
        return self.settler.settle_tree(merge.name, clone, (tree, conflicts), base, source, rules)

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
        """Merge node ``branch`` and then each rider's node commit into ground-truth, one after
        the other, and push ground-truth once (atomically with ``branch``): (the merge of
        ``branch``, {rider commit: the merge commit that took it in}).

        The caller holds the federation lock, so nobody else moves ground-truth meanwhile;
        each rider's node commit comes in its pack or is on the remote already (a fresh fetch
        brings it); ``commit`` is the node commit of ``branch`` (None: its newest). Without
        ``fetch`` (ground-truth is as this clone last saw it: its own push, say) nothing is
        fetched when every rider brings its pack. A rider whose commit this clone cannot find,
        or whose merge conflicts, is left out (it merges on its own). A refused push is
        retried from a fresh fetch, as :meth:`merge`.
        """
        check_branch(branch)

        def attempt(number: int) -> tuple[str, dict[str, str]] | GitError:
            result = once(fetch or number > 0)
            if isinstance(result, GitError) and not fetch and number == 0:
                result = once(True)  # ground-truth had moved after all: fetch and merge again at once
            return result

        def once(fresh: bool) -> tuple[str, dict[str, str]] | GitError:
            with self.core.lock(name):
                clone = self.core.existing_clone(name)
                # a rider's commit that comes through the remote needs every branch fetched; else
                # ground-truth alone, when it may have moved
                through_remote = not riders or any(rider.pack is None for rider in riders)
                if fresh or through_remote:
                    error = self.core.try_fetch(clone, None if through_remote else GROUND_TRUTH)
                    if error is not None:
                        return error
                present = self.packs.receive(clone, [Carried(r.commit, r.onto, r.pack) for r in riders])
                for rider in riders:
                    if rider.commit not in present:
                        logger.info(
                            "dataset %s: node commit %s of %s is not here yet", name, rider.commit, rider.branch
                        )
                aboard = [rider for rider in riders if rider.commit in present]
                self._chain_at[name] = ""
                try:
                    return self._train_once(clone, name, branch, message, trailers, aboard, commit)
                finally:
                    self._chain_at.pop(name, None)

        what = f"merged {branch} and {len(riders)} waiting node branches into {GROUND_TRUTH}"
        return self.retries.until_done(name, GROUND_TRUTH, what, attempt)

    def _train_once(
        self,
        clone: Path,
        name: str,
        branch: str,
        message: str,
        trailers: dict[str, str],
        riders: list[Rider],
        commit: str | None,
    ) -> tuple[str, dict[str, str]] | GitError:
        """One attempt of :meth:`merge_train` from the clone as just fetched: its result, or
        the error of the refused push."""
        own, known = self._own_merge(clone, name, branch, message, trailers, commit)
        own_merge = head = self._merge_commit(own, known)
        merges: dict[str, str] = {}
        for rider in riders:
            ride = _Merge(name, clone, rider.branch, None, rider.commit, head, False, rider.message, rider.trailers)
            try:
                head = merges[rider.commit] = self._merge_commit(ride, {})
            except (MergeConflict, GitError) as exc:  # a conflict, or git could not merge it at all
                logger.warning("dataset %s: %s is left to merge on its own: %s", name, rider.branch, exc.message)
        pushed_head = None if head == own.base and not own.first else head
        error = self.push_merge(clone, own.node_ref, pushed_head)
        if error is not None:
            self._reset_worktree(name, own.base)
            return error
        return own_merge, merges

    def _reset_worktree(self, name: str, base: str) -> None:
        """After a refused push: a ground-truth worktree left at an unpushed merge goes back to ``base``."""
        worktree = self.core.worktree_path(name, GROUND_TRUTH)
        if worktree.exists():
            self.worktrees.clean(worktree, GROUND_TRUTH, base)

    def _log_superseded(self, merge: _Merge, paths: list[str]) -> None:
        logger.warning(
            "dataset %s: %s changed %s since %s last agreed with it; the newest change is kept, "
            "the earlier one stays in %s's history",
            merge.name,
            merge.branch,
            ", ".join(paths),
            merge.branch,
            GROUND_TRUTH,
        )

    def _merge_onto(self, clone: Path, message: str, trailers: dict[str, str], source: str, onto: str) -> str:
        """The merge commit of ``source`` made directly on ground-truth commit ``onto``: its files are the node's."""
        text = format_message(message, trailers)
        return self.git.run(["commit-tree", f"{source}^{{tree}}", "-p", onto, "-p", source], clone, input=text).strip()

    def _merge_in_worktree(self, merge: _Merge) -> str:
        """The merge with conflicts to settle, in the ground-truth worktree (not pushed)."""
        worktree = self.core.worktree_path(merge.name, GROUND_TRUTH)
        if self._chain_at.get(merge.name) != merge.base or not worktree.is_dir():
            worktree = self.worktrees.checkout(merge.name, merge.clone, GROUND_TRUTH, merge.base)
        text = format_message(merge.message, merge.trailers)
        args = ["merge", "--quiet", "--no-ff", "--no-edit", "--no-verify", "--allow-unrelated-histories"]
        result = self.git.call([*args, "-m", text, merge.source], worktree)
        settled = None
        if result.returncode != 0:
            settled = self.settler.settle(merge.name, merge.clone, worktree, merge.base, merge.source)
        if settled is not None:
            if settled:
                text = format_message(merge.message, {**merge.trailers, SUPERSEDED: ", ".join(settled)})
                result = self.git.call(
                    ["commit", "--quiet", "--no-verify", "--cleanup=whitespace", "--file=-"], worktree, input=text
                )
                self._log_superseded(merge, settled)
            else:
                result = self.git.call(["commit", "--quiet", "--no-verify", "--no-edit", "--cleanup=strip"], worktree)
        if result.returncode != 0:
            files = self.worktrees.conflicted_files(worktree)
            self.git.call(["merge", "--abort"], worktree)
            self.worktrees.clean(worktree, GROUND_TRUTH, merge.base)
            if merge.node_ref is not None:
                self.push_merge(merge.clone, merge.node_ref, None)  # the node's commits reach the remote all the same
            if files:
                raise MergeConflict(
                    f"merging {merge.branch} into {GROUND_TRUTH} of dataset {merge.name} conflicts in: {', '.join(files)}",
                    files,
                )
            raise self.git.error(["merge", merge.source], worktree, result.returncode, result.stderr)
        merged = self.git.run(["rev-parse", "HEAD"], worktree).strip()
        if settled is not None:  # settled in the index: git writes the files as the merge commit has them
            self.worktrees.clean(worktree, GROUND_TRUTH, merged)
        if merge.name in self._chain_at:  # a train's next merge starts from here
            self._chain_at[merge.name] = merged
        if merged == merge.base and not merge.first:
            logger.info("dataset %s: %s is already part of %s", merge.name, merge.branch, GROUND_TRUTH)
        return merged
