"""Writing ``ground-truth``: node branches merged in (policy ``merge``), with a retry when the push loses a race.

A mixin of :class:`~mao.datasets.manager.DatasetManager`: it uses the manager's clone,
lock and small git helpers.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao.errors import GitError, InvalidInput, MergeConflict, NotFound

logger = logging.getLogger(__name__)

GROUND_TRUTH = "ground-truth"

# Files where rows appended by two instances can both be kept when both created the file.
_LINE_FILES = (".csv", ".tsv", ".txt", ".log", ".jsonl", ".ndjson")

# The modes of a regular file in git: only those are settled line by line. A symbolic link
# (120000) keeps its target in a blob and a gitlink (160000) a commit id; their conflicts
# take the newest side like any other, and nothing is ever written through a link.
_REGULAR_MODES = ("100644", "100755")
_ZERO = "0" * 40


@dataclass(frozen=True)
class _Stage:
    """One entry of the index: a mode and an object (one side of a conflicted path, or its result)."""

    mode: str
    sha: str


class _NoRef:
    parents: tuple[str, ...] = ()


_NO_REF = _NoRef()


class GroundTruthMixin:
    git: Any
    push_retries: int
    retry_delay: float

    if TYPE_CHECKING:  # provided by DatasetManager

        def _lock(self, name: str) -> Any: ...
        def _retrying(self, name: str, branch: str, attempt: int) -> None: ...
        def _existing_clone(self, name: str) -> Path: ...
        def _fetch(self, clone: Path) -> None: ...
        def _tip(self, clone: Path, branch: str) -> str | None: ...
        def _rev(self, cwd: Path, ref: str) -> str | None: ...
        def _agreed(self, clone: Path) -> str | None: ...
        def _empty_root(self, clone: Path) -> str: ...
        def _checkout(self, name: str, clone: Path, branch: str, sha: str) -> Path: ...
        def _message(self, clone: Path, message: str, trailers: dict[str, str]) -> str: ...
        def _refs(self, clone: Path) -> dict[str, Any]: ...
        def _agreed_in(self, refs: dict[str, Any]) -> str | None: ...
        def _is_ancestor(self, cwd: Path, ancestor: str, descendant: str) -> bool: ...
        def _clean(self, worktree: Path, branch: str, sha: str) -> None: ...
        def _resolve(self, clone: Path, ref: str) -> str | None: ...
        def ensure_clone(self, name: str, url: str, *, offline_ok: bool = False) -> Path: ...

    def merge_to_ground_truth(
        self,
        name: str,
        branch: str,
        message: str,
        trailers: dict[str, str],
        *,
        source: str | None = None,
        fetched: bool = False,
        onto: str | None = None,
    ) -> str:
        """Merge node ``branch`` into ``ground-truth`` with a merge commit and push both; return the merge commit.

        The node branch and ground-truth go to origin in one atomic push, so the node's
        commits are on the remote whenever its merge is. ``source`` is the node commit to
        merge (default: the branch's newest known commit); ``fetched`` says the clone was
        fetched moments ago, so the first attempt works from that fetch and only a refused
        push fetches again; ``onto`` says ``source`` was committed directly on that
        ``origin/ground-truth`` commit (as fetched), so the merge takes the node's files as
        they are, with no ref listing.

        The first merge creates ground-truth from the empty root commit. Files both sides
        changed since they last agreed are settled without stopping anyone: rows both sides
        appended to a regular file are all kept (ground-truth's first); anything else, a
        symbolic link or gitlink included, takes the node's version, the newest change, and
        the merge commit names those files in a ``Mao-Superseded`` trailer (ground-truth's
        version stays in its history). They are settled in the index: no file is written,
        so never through a link a tool committed. If
        git still cannot merge, the node branch alone is pushed, the ground-truth worktree
        is left clean and MergeConflict names the files. A push refused because
        ground-truth moved meanwhile (or any failed push) is retried from a fresh fetch;
        when every attempt failed, nothing was pushed, the node's commits stay local (the
        next run pushes them) and GitError is raised. The caller holds the federation lock.
        """
        from mao.datasets.manager import check_branch

        check_branch(branch)
        if branch == GROUND_TRUTH:
            raise InvalidInput(f"cannot merge {GROUND_TRUTH} into itself")
        attempts = self.push_retries + 1
        last: GitError | None = None
        attempt = 0
        fresh = not fetched
        while attempt < attempts:
            if attempt and fresh:
                self._retrying(name, GROUND_TRUTH, attempt)
                time.sleep(self.retry_delay * 2 ** (attempt - 1))
            with self._lock(name):
                clone = self._existing_clone(name)
                error = self._try_fetch(clone) if fresh else None
                if error is not None:  # the remote did not answer: tried again like a refused push
                    pushed = False
                elif not fresh and onto is not None and source is not None:
                    merged = self._merge_onto(clone, branch, message, trailers, source, onto)
                    error = self._push_merge(clone, f"refs/heads/{branch}", merged)
                    pushed = error is None
                else:
                    merged, pushed, error = self._merge_once(name, branch, message, trailers, source)
                if pushed:
                    return merged
            last = error
            if not fresh:  # worked from an earlier fetch: fetch and merge again at once
                fresh = True
                continue
            logger.warning(
                "dataset %s: push of %s failed (attempt %d of %d), fetching and merging again: %s",
                name,
                GROUND_TRUTH,
                attempt + 1,
                attempts,
                error.message if error else "",
            )
            attempt += 1
        assert last is not None
        raise GitError(
            f"merged {branch} into {GROUND_TRUTH} of dataset {name} but could not push it "
            f"after {attempts} attempts: {last.message}",
            details=last.details,
        )

    def _try_fetch(self, clone: Path) -> GitError | None:
        try:
            self._fetch(clone)
        except GitError as exc:
            return exc
        return None

    def _merge_once(
        self, name: str, branch: str, message: str, trailers: dict[str, str], source: str | None = None
    ) -> tuple[str, bool, GitError | None]:
        """One merge and push, from the clone as last fetched: (merge commit, pushed, push error).

        A merge git can do without a working tree (``merge-tree``; a fast-forwardable one
        needs not even that) is written with ``commit-tree``; one with conflicts is done
        in the ground-truth worktree, where they are settled file by file.
        """
        clone = self._existing_clone(name)
        refs = self._refs(clone)
        local = refs.get(f"refs/heads/{branch}")
        if source is None:
            source = self._tip(clone, branch)
        if source is None:
            raise NotFound(f"dataset {name!r} has no branch {branch!r} to merge")
        node_ref = f"refs/heads/{branch}" if local is not None else None
        remote_gt = refs.get(f"refs/remotes/origin/{GROUND_TRUTH}")
        first = remote_gt is None
        base = remote_gt.sha if remote_gt else (self._agreed_in(refs) or self._empty_root(clone))
        known = {info.sha: info for info in refs.values()}
        source_info = known.get(source)
        if not first and (source == base or source in known.get(base, _NO_REF).parents):
            logger.info("dataset %s: %s is already part of %s", name, branch, GROUND_TRUTH)
            return base, True, None
        if source_info is not None and base in source_info.parents:
            tree = source_info.tree  # ground-truth is the node's parent: the merge takes the node's tree
        else:
            result = self.git.call(["merge-tree", "--write-tree", "--no-messages", base, source], clone)
            if result.returncode != 0:
                return self._merge_in_worktree(name, clone, branch, message, trailers, source, base, first, node_ref)
            tree = result.stdout.split()[0]
            same_tree = not first and tree == self.git.run(["rev-parse", f"{base}^{{tree}}"], clone).strip()
            if same_tree and self._is_ancestor(clone, source, base):
                logger.info("dataset %s: %s is already part of %s", name, branch, GROUND_TRUTH)
                return base, True, None
        text = self._message(clone, message, trailers)
        merged = self.git.run(["commit-tree", tree, "-p", base, "-p", source], clone, input=text).strip()
        error = self._push_merge(clone, node_ref, merged)
        return merged, error is None, error

    def _merge_onto(
        self, clone: Path, branch: str, message: str, trailers: dict[str, str], source: str, onto: str
    ) -> str:
        """The merge commit of ``source`` made directly on ground-truth commit ``onto``: its files are the node's."""
        text = self._message(clone, message, trailers)
        return self.git.run(["commit-tree", f"{source}^{{tree}}", "-p", onto, "-p", source], clone, input=text).strip()

    def _merge_in_worktree(
        self,
        name: str,
        clone: Path,
        branch: str,
        message: str,
        trailers: dict[str, str],
        source: str,
        base: str,
        first: bool,
        node_ref: str | None,
    ) -> tuple[str, bool, GitError | None]:
        """The merge with conflicts to settle, in the ground-truth worktree."""
        worktree = self._checkout(name, clone, GROUND_TRUTH, base)
        text = self._message(clone, message, trailers)
        args = ["merge", "--quiet", "--no-ff", "--no-edit", "--no-verify", "--allow-unrelated-histories"]
        result = self.git.call([*args, "-m", text, source], worktree)
        settled = None
        if result.returncode != 0:
            settled = self._settle(name, worktree, source)
        if settled is not None:
            if settled:
                text = self._message(clone, message, {**trailers, "Mao-Superseded": ", ".join(settled)})
                result = self.git.call(
                    ["commit", "--quiet", "--no-verify", "--cleanup=whitespace", "--file=-"], worktree, input=text
                )
                logger.warning(
                    "dataset %s: %s changed %s since %s last agreed with it; the newest change is kept, "
                    "the earlier one stays in %s's history",
                    name,
                    branch,
                    ", ".join(settled),
                    branch,
                    GROUND_TRUTH,
                )
            else:
                result = self.git.call(["commit", "--quiet", "--no-verify", "--no-edit", "--cleanup=strip"], worktree)
        if result.returncode != 0:
            files = self._conflicted_files(worktree)
            self.git.call(["merge", "--abort"], worktree)
            self._clean(worktree, GROUND_TRUTH, base)
            if node_ref is not None:
                self._push_merge(clone, node_ref, None)  # the node's commits reach the remote all the same
            if files:
                raise MergeConflict(
                    f"merging {branch} into {GROUND_TRUTH} of dataset {name} conflicts in: {', '.join(files)}",
                    files,
                )
            raise self.git.error(["merge", source], worktree, result.returncode, result.stderr)
        merged = self.git.run(["rev-parse", "HEAD"], worktree).strip()
        if settled is not None:  # settled in the index: git writes the files as the merge commit has them
            self._clean(worktree, GROUND_TRUTH, merged)
        if merged == base and not first:
            logger.info("dataset %s: %s is already part of %s", name, branch, GROUND_TRUTH)
            return merged, True, None
        error = self._push_merge(clone, node_ref, merged)
        if error is not None:
            self._clean(worktree, GROUND_TRUTH, base)
            return merged, False, error
        return merged, True, None

    def _push_merge(self, clone: Path, node_ref: str | None, merged: str | None) -> GitError | None:
        """One atomic push of the node branch and the merge commit as ground-truth; the error, or None."""
        refspecs = [f"{node_ref}:{node_ref}"] if node_ref is not None else []
        if merged is not None:
            refspecs.append(f"{merged}:refs/heads/{GROUND_TRUTH}")
        try:
            self.git.run(["push", "--quiet", "--no-verify", "--atomic", "origin", *refspecs], clone)
        except GitError as exc:
            return exc
        return None

    def _settle(self, name: str, worktree: Path, source: str) -> list[str] | None:
        """Settle every conflict of the merge of ``source`` in ``worktree``, in its index only.

        Rows both sides appended to a regular file are all kept, ground-truth's first (for
        a line-oriented file both sides created, their common first lines, a header, stand
        in for the base). Any other conflict (a line changed or removed, a deletion, binary
        content, a symbolic link or a gitlink) takes the node's side, the newest change: it
        was made after ground-truth's, which stays reachable as the merge's first parent.
        The merged content is written as a blob and staged with ``update-index``: no file
        of the worktree, where a tool may have committed links, is read or written.

        Returns the paths that took the node's side (none when every conflict was rows
        appended), or None when nothing is conflicted or git's record of a conflict cannot
        be traced back to the node's files: the merge is then left as it is.
        """
        conflicts = self._unmerged(worktree)
        if not conflicts:
            return None
        kept: dict[str, _Stage] = {}
        removed: set[str] = set()
        appended: list[str] = []
        superseded: set[str] = set()
        for path, stages in conflicts.items():
            theirs = stages.get(3)
            original = self._moved_aside(worktree, path, source)
            if original is not None:  # one side of a file/directory or file/link conflict, put aside by git
                removed.add(path)
                superseded.add(original)
                if theirs is not None:
                    if original in kept or self._entry(worktree, source, original) != theirs.sha:
                        return None
                    kept[original] = theirs
                continue
            both = self._appended(worktree, path, stages)
            if both is not None:
                kept[path] = both
                appended.append(path)
                continue
            superseded.add(path)
            if theirs is None:  # the node deleted it
                removed.add(path)
            elif kept.setdefault(path, theirs) != theirs:
                return None
        records = [f"0 {_ZERO}\t{path}" for path in sorted(removed - kept.keys())]
        records += [f"{entry.mode} {entry.sha}\t{path}" for path, entry in sorted(kept.items())]
        staged = self.git.call(["update-index", "-z", "--index-info"], worktree, input="\0".join(records) + "\0")
        if staged.returncode != 0:
            logger.warning("dataset %s: cannot settle the merge in the index: %s", name, staged.stderr.strip())
            return None
        if appended:
            logger.info("dataset %s: kept the lines both sides appended to %s", name, ", ".join(appended))
        return sorted(superseded)

    def _unmerged(self, worktree: Path) -> dict[str, dict[int, _Stage]]:
        """The conflicted paths of the merge in ``worktree`` and their stages (1 the base,
        2 ground-truth, 3 the node), as the index records them."""
        out = self.git.run(["ls-files", "--unmerged", "-z"], worktree)
        conflicts: dict[str, dict[int, _Stage]] = {}
        for record in out.split("\0"):
            if "\t" not in record:
                continue
            meta, path = record.split("\t", 1)
            mode, sha, stage = meta.split()
            conflicts.setdefault(path, {})[int(stage)] = _Stage(mode, sha)
        return conflicts

    def _moved_aside(self, worktree: Path, path: str, source: str) -> str | None:
        """The path git moved one side of a conflict away from, when ``path`` is such a place
        (``<path>~HEAD`` or ``<path>~<source>``, maybe with ``_<n>``) and not a file of either side."""
        found = re.fullmatch(rf"(.+)~(?:HEAD|{re.escape(source)})(?:_[0-9]+)?", path, re.DOTALL)
        if found is None or any(self._entry(worktree, rev, path) is not None for rev in ("HEAD", source)):
            return None
        return found.group(1)

    def _entry(self, worktree: Path, rev: str, path: str) -> str | None:
        """The object at ``path`` in commit ``rev``, or None."""
        args = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}:{path}"]
        return self.git.run(args, worktree, check=False).strip() or None

    def _appended(self, worktree: Path, path: str, stages: dict[int, _Stage]) -> _Stage | None:
        """The entry keeping the rows both sides only appended to regular file ``path``
        (ground-truth's lines, then the node's), its blob written; None when they did more."""
        base, ours, theirs = stages.get(1), stages.get(2), stages.get(3)
        if ours is None or theirs is None or any(stage.mode not in _REGULAR_MODES for stage in stages.values()):
            return None
        ours_lines, theirs_lines = self._blob_lines(worktree, ours.sha), self._blob_lines(worktree, theirs.sha)
        if any(b"\0" in line for line in ours_lines + theirs_lines):
            return None
        if base is not None:
            base_lines = self._blob_lines(worktree, base.sha)
        elif path.lower().endswith(_LINE_FILES):  # both created it
            base_lines = list(_common_prefix(ours_lines, theirs_lines))
        else:
            return None
        size = len(base_lines)
        if ours_lines[:size] != base_lines or theirs_lines[:size] != base_lines:
            return None
        if (base_lines and not base_lines[-1].endswith(b"\n")) or (
            len(ours_lines) > size and not ours_lines[-1].endswith(b"\n")
        ):
            return None
        content = b"".join(ours_lines + theirs_lines[size:]).decode("utf-8", "surrogateescape")
        blob = self.git.run(["hash-object", "-w", "--no-filters", "--stdin"], worktree, input=content).strip()
        mode = theirs.mode if base is None or ours.mode == base.mode else ours.mode
        return _Stage(mode, blob)

    def _blob_lines(self, worktree: Path, sha: str) -> list[bytes]:
        """A blob's lines as bytes, ends kept."""
        with self.git.stream(["cat-file", "blob", sha], worktree) as stdout:
            return stdout.read().splitlines(keepends=True)

    def read_agreed_file(self, name: str, url: str, path: str, max_bytes: int) -> bytes:
        """The content of ``path`` in the dataset's ``ground-truth`` (as of a fresh fetch).

        ``path`` is relative, without ``.``/``..`` segments or ``.git``; NotFound when
        ground-truth lacks it or it is a directory; PayloadTooLarge over ``max_bytes``.
        """
        from mao.errors import PayloadTooLarge

        parts = path.split("/")
        if (
            not path
            or len(path) > 1024
            or any(part in ("", ".", "..") or part.lower() == ".git" for part in parts)
            or any(ch in path for ch in ("\\", "\0", ":"))
        ):
            raise InvalidInput(f"invalid file path {path!r}: give a path relative to the dataset, without '..'")
        with self._lock(name):
            clone = self.ensure_clone(name, url)
            sha = self._resolve(clone, GROUND_TRUTH)
            if sha is None:
                raise NotFound(f"dataset {name!r} has no {GROUND_TRUTH} yet")
            spec = f"{sha}:{path}"
            kind = self.git.call(["cat-file", "-t", spec], clone)
            if kind.returncode != 0 or kind.stdout.strip() != "blob":
                raise NotFound(f"{GROUND_TRUTH} of dataset {name!r} has no file {path!r}")
            size = int(self.git.run(["cat-file", "-s", spec], clone).strip())
            if size > max_bytes:
                raise PayloadTooLarge(
                    f"{path} is {size} bytes, over the {max_bytes} bytes served here: clone the dataset instead",
                    details={"limit_bytes": max_bytes, "size": size},
                )
            with self.git.stream(["cat-file", "blob", spec], clone) as stdout:
                return stdout.read(max_bytes + 1)

    def push_once(self, name: str, branch: str) -> GitError | None:
        """One push of local ``branch`` to origin (no retry); the error, or None when it went through."""
        clone = self._existing_clone(name)
        try:
            self.git.run(
                ["push", "--quiet", "--no-verify", "origin", f"refs/heads/{branch}:refs/heads/{branch}"], clone
            )
        except GitError as exc:
            return exc
        return None

    def _conflicted_files(self, worktree: Path) -> list[str]:
        out = self.git.run(["diff", "--name-only", "--diff-filter=U", "-z"], worktree, check=False)
        return sorted({path for path in out.split("\0") if path})


def _common_prefix(ours: list[bytes], theirs: list[bytes]) -> Iterator[bytes]:
    for a, b in zip(ours, theirs, strict=False):
        if a != b:
            return
        yield a
