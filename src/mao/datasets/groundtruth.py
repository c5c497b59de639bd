"""Writing ``ground-truth``: node branches merged in (policy ``merge``), with a retry when the push loses a race.

A mixin of :class:`~mao.datasets.manager.DatasetManager`: it uses the manager's clone,
lock and small git helpers.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao.errors import GitError, InvalidInput, MergeConflict, NotFound

logger = logging.getLogger(__name__)

GROUND_TRUTH = "ground-truth"

# Files where rows appended by two instances can both be kept when both created the file.
_LINE_FILES = (".csv", ".tsv", ".txt", ".log", ".jsonl", ".ndjson")


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
        appended to a line-oriented file are all kept (ground-truth's first); anything else
        takes the node's version, the newest change, and the merge commit names those files
        in a ``Mao-Superseded`` trailer (ground-truth's version stays in its history). If
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
        if result.returncode != 0 and self._keep_both_appends(name, worktree):
            result = self.git.call(["commit", "--quiet", "--no-verify", "--no-edit", "--cleanup=strip"], worktree)
        if result.returncode != 0:
            superseded = self._keep_newest(worktree)
            if superseded:
                text = self._message(clone, message, {**trailers, "Mao-Superseded": ", ".join(superseded)})
                result = self.git.call(
                    ["commit", "--quiet", "--no-verify", "--cleanup=whitespace", "--file=-"], worktree, input=text
                )
                logger.warning(
                    "dataset %s: %s changed %s since %s last agreed with it; the newest change is kept, "
                    "the earlier one stays in %s's history",
                    name,
                    branch,
                    ", ".join(superseded),
                    branch,
                    GROUND_TRUTH,
                )
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

    def _keep_both_appends(self, name: str, worktree: Path) -> bool:
        """Settle a conflicted merge in which both sides only added lines at the end of each
        conflicted file (collectors appending rows to one file at once): ground-truth's
        lines first, then the node's. Anything else (a line changed or removed, a file
        deleted, binary content) is a genuine conflict: False, the merge left as it is.
        For a line-oriented file both sides created, their common first lines (a header)
        stand in for the base.
        """
        files = self._conflicted_files(worktree)
        if not files:
            return False
        resolved: dict[str, str] = {}
        for path in files:
            stages = {}
            for stage in (1, 2, 3):
                shown = self.git.call(["cat-file", "-e", f":{stage}:{path}"], worktree)
                if shown.returncode == 0:
                    stages[stage] = self._blob_lines(worktree, f":{stage}:{path}")
            ours, theirs = stages.get(2), stages.get(3)
            if ours is None or theirs is None or "\0" in "".join(ours + theirs):
                return False
            base = stages.get(1)
            if base is None:
                # both created it: their common first lines (a header, or nothing) stand in
                # for the base, for line-oriented files only
                if not path.lower().endswith(_LINE_FILES):
                    return False
                base = list(_common_prefix(ours, theirs))
            if ours[: len(base)] != base or theirs[: len(base)] != base:
                return False
            if (base and not base[-1].endswith("\n")) or (len(ours) > len(base) and not ours[-1].endswith("\n")):
                return False
            resolved[path] = "".join(ours + theirs[len(base) :])
        for path, content in resolved.items():
            (worktree / path).write_bytes(content.encode("utf-8", "surrogateescape"))
            self.git.run(["add", "--force", "--", path], worktree)
        logger.info("dataset %s: kept the lines both sides appended to %s", name, ", ".join(resolved))
        return True

    def _keep_newest(self, worktree: Path) -> list[str]:
        """Settle the remaining conflicts of a merge into ground-truth with the node's side (the
        newest change: it was made after ground-truth's, which stays reachable as the merge's
        first parent). Returns the files settled so; none when nothing was conflicted."""
        files = self._conflicted_files(worktree)
        for path in files:
            if self.git.call(["cat-file", "-e", f":3:{path}"], worktree).returncode == 0:
                self.git.run(["checkout", "--theirs", "--", path], worktree)
                self.git.run(["add", "--force", "--", path], worktree)
            else:  # the node deleted it
                self.git.run(["rm", "--quiet", "--cached", "--ignore-unmatch", "--", path], worktree)
                (worktree / path).unlink(missing_ok=True)
        return files

    def _blob_lines(self, worktree: Path, spec: str) -> list[str]:
        """A blob's lines, ends kept (undecodable bytes survive as surrogates)."""
        return self.git.run(["cat-file", "blob", spec], worktree).splitlines(keepends=True)

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


def _common_prefix(ours: list[str], theirs: list[str]):
    for a, b in zip(ours, theirs, strict=False):
        if a != b:
            return
        yield a
