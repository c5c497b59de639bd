"""Settling the conflicts of a merge into ground-truth, in git's index only.

Nobody is stopped by a concurrent change: per the rules the dataset declares (see
:mod:`mao.datasets.attributes`), rows both sides appended are all kept, and anything else
takes the node's side, the newest change, named in the merge commit's ``Mao-Superseded``
trailer. The merged content is written as a blob (``git hash-object -w``) and staged
with ``git update-index``: no file of the worktree, where a tool may have committed
links, is read or written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mao.datasets.attributes import MergeAttributes, MergeRule
from mao.datasets.git import Git

__all__ = ["Settler"]

logger = logging.getLogger(__name__)

# Files where rows appended by two instances can both be kept when both created the file
# (and the dataset declares no rule for them).
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


class Settler:
    """Settles the conflicts a merge left in a worktree's index."""

    def __init__(self, git: Git, attributes: MergeAttributes) -> None:
        self.git = git
        self.attributes = attributes

    def settle(self, name: str, clone: Path, worktree: Path, base: str, source: str) -> list[str] | None:
        """Settle every conflict of the merge of ``source`` into ``base`` in ``worktree``.

        Rows both sides appended to a regular file are all kept, ground-truth's first (for
        a line-oriented file both sides created, their common first lines, a header, stand
        in for the base), unless ground-truth's attributes make the file a single value
        (``-merge``, ``binary``). Any other conflict (a line changed or removed, a deletion,
        binary content, a symbolic link or a gitlink) takes the node's side, the newest
        change: it was made after ground-truth's, which stays reachable as the merge's
        first parent. Lines of a ``merge=union`` file were kept by git's merge already.

        Returns the paths that took the node's side (none when every conflict was rows
        appended), or None when nothing is conflicted or git's record of a conflict cannot
        be traced back to the node's files: the merge is then left as it is.
        """
        conflicts = self._unmerged(worktree)
        if not conflicts:
            return None
        aside = {path: self._moved_aside(worktree, path, source) for path in conflicts}
        rules = self.attributes.rules(clone, base, [path for path, original in aside.items() if original is None])
        kept: dict[str, _Stage] = {}
        removed: set[str] = set()
        appended: list[str] = []
        superseded: set[str] = set()
        for path, stages in conflicts.items():
            theirs = stages.get(3)
            original = aside[path]
            if original is not None:  # one side of a file/directory or file/link conflict, put aside by git
                removed.add(path)
                superseded.add(original)
                if theirs is not None:
                    if original in kept or self._entry(worktree, source, original) != theirs.sha:
                        return None
                    kept[original] = theirs
                continue
            rule = rules.get(path, MergeRule.DEFAULT)
            both = self._appended(worktree, path, stages) if rule != MergeRule.SINGLE else None
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


def _common_prefix(ours: list[bytes], theirs: list[bytes]) -> Iterator[bytes]:
    for a, b in zip(ours, theirs, strict=False):
        if a != b:
            return
        yield a
