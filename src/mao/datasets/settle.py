"""Settling the conflicts of a merge into ground-truth, in git's index only.

Nobody is stopped by a concurrent change: per the rules the dataset declares (see
:mod:`mao.datasets.attributes`), rows both sides appended are all kept, and anything else
takes the node's side, the newest change, named in the merge commit's ``Mao-Superseded``
trailer. The merged content is written as a blob (``git hash-object -w``) and staged
with ``git update-index``: no file of a worktree, where a tool may have committed links,
is read or written. The conflicts come either from a merge in the ground-truth worktree
(:meth:`Settler.settle`) or from ``git merge-tree`` with no worktree at all
(:meth:`Settler.settle_tree`: the settled tree is built in a temporary index).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mao.datasets.attributes import MergeAttributes, MergeRule
from mao.datasets.git import Git
from mao.errors import GitError

__all__ = ["Conflicts", "Settler", "parse_merge_tree", "parse_stages"]

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


Conflicts = dict[str, dict[int, _Stage]]
"""Conflicted paths and their stages (1 the base, 2 ground-truth, 3 the node)."""


def parse_merge_tree(output: str) -> tuple[str, Conflicts, set[str]]:
    """What ``merge-tree --write-tree -z`` printed: the tree, the conflicts' stages, and the
    paths whose content git merged line by line (its ``Auto-merging`` messages, printed when
    a merge has conflicts)."""
    fields = output.split("\0")
    tree, index = fields[0], 1
    records = []
    while index < len(fields) and fields[index]:
        records.append(fields[index])
        index += 1
    index += 1
    merged: set[str] = set()
    while index < len(fields) and fields[index].isdigit():  # <n>, n paths, a kind, a message
        count = int(fields[index])
        paths, kind = fields[index + 1 : index + 1 + count], fields[index + 1 + count : index + 2 + count]
        if kind == ["Auto-merging"]:
            merged.update(paths)
        index += count + 3
    return tree, parse_stages(records), merged


def parse_stages(records: list[str]) -> Conflicts:
    """The conflicts in ``<mode> <object> <stage>\t<path>`` records (``ls-files --unmerged``,
    or ``merge-tree``'s conflicted file info)."""
    conflicts: Conflicts = {}
    for record in records:
        if "\t" not in record:
            continue
        meta, path = record.split("\t", 1)
        mode, sha, stage = meta.split()
        conflicts.setdefault(path, {})[int(stage)] = _Stage(mode, sha)
    return conflicts


@dataclass
class _Plan:
    """What settling a merge's conflicts writes: index ``records`` (for ``update-index
    --index-info``), the paths that took the node's side, those whose appended rows were kept."""

    records: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    appended: list[str] = field(default_factory=list)


class Settler:
    """Settles the conflicts of a merge, in a worktree's index or in a temporary one."""

    def __init__(self, git: Git, attributes: MergeAttributes) -> None:
        self.git = git
        self.attributes = attributes

    def settle_tree(
        self,
        name: str,
        clone: Path,
        merged: tuple[str, Conflicts],
        base: str,
        source: str,
        rules: Mapping[str, MergeRule] | None = None,
    ) -> tuple[str, list[str]] | None:
        """Settle the conflicts ``merge-tree`` reported for the merge of ``source`` into ``base``
        (``merged``: the tree it wrote, with conflict markers, and the conflicts' stages),
        as :meth:`settle` does, with no worktree: (the settled tree, the paths that took the
        node's side), or None when they cannot be settled so. ``rules`` may hold the paths'
        rules already read."""
        tree, conflicts = merged
        plan = self._plan(name, clone, conflicts, (base, source), rules)
        if plan is None:
            return None
        try:
            settled = self.git.tree_with(clone, tree, plan.records)
        except GitError as exc:
            logger.warning("dataset %s: cannot settle the merge in an index: %s", name, exc.message)
            return None
        self._log_appended(name, plan)
        return settled, plan.superseded

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
        plan = self._plan(name, clone, conflicts, (base, source))
        if plan is None:
            return None
        staged = self.git.call(["update-index", "-z", "--index-info"], worktree, input="\0".join(plan.records) + "\0")
        if staged.returncode != 0:
            logger.warning("dataset %s: cannot settle the merge in the index: %s", name, staged.stderr.strip())
            return None
        self._log_appended(name, plan)
        return plan.superseded

    def _log_appended(self, name: str, plan: _Plan) -> None:
        if plan.appended:
            logger.info("dataset %s: kept the lines both sides appended to %s", name, ", ".join(plan.appended))

    def _plan(
        self,
        name: str,
        clone: Path,
        conflicts: Conflicts,
        sides: tuple[str, str],
        rules: Mapping[str, MergeRule] | None = None,
    ) -> _Plan | None:
        """How to settle ``conflicts`` of the merge of ``sides`` (ground-truth's commit, the
        node's): None when git's record of a conflict cannot be traced back to the node's files."""
        base, source = sides
        aside = {path: self._moved_aside(clone, path, sides) for path in conflicts}
        plain = [path for path, original in aside.items() if original is None]
        if rules is None or not set(plain) <= rules.keys():
            rules = self.attributes.rules(clone, base, plain)
        kept: dict[str, _Stage] = {}
        removed: set[str] = set()
        plan = _Plan()
        superseded: set[str] = set()
        for path, stages in conflicts.items():
            theirs = stages.get(3)
            original = aside[path]
            if original is not None:  # one side of a file/directory or file/link conflict, put aside by git
                removed.add(path)
                superseded.add(original)
                if theirs is not None:
                    if original in kept or self._entry(clone, source, original) != theirs.sha:
                        return None
                    kept[original] = theirs
                continue
            rule = rules.get(path, MergeRule.DEFAULT)
            both = self._appended(clone, path, stages) if rule != MergeRule.SINGLE else None
            if both is not None:
                kept[path] = both
                plan.appended.append(path)
                continue
            superseded.add(path)
            if theirs is None:  # the node deleted it
                removed.add(path)
            elif kept.setdefault(path, theirs) != theirs:
                return None
        plan.records = [f"0 {_ZERO}\t{path}" for path in sorted(removed - kept.keys())]
        plan.records += [f"{entry.mode} {entry.sha}\t{path}" for path, entry in sorted(kept.items())]
        plan.superseded = sorted(superseded)
        return plan

    def _unmerged(self, worktree: Path) -> dict[str, dict[int, _Stage]]:
        """The conflicted paths of the merge in ``worktree`` and their stages (1 the base,
        2 ground-truth, 3 the node), as the index records them."""
        return parse_stages(self.git.run(["ls-files", "--unmerged", "-z"], worktree, exact=True).split("\0"))

    def _moved_aside(self, clone: Path, path: str, sides: tuple[str, str]) -> str | None:
        """The path git moved one side of a conflict away from, when ``path`` is such a place
        (``<path>~<side>``, the side named ``HEAD`` in a worktree's merge and by its commit in
        ``merge-tree``'s, maybe with ``_<n>``) and not a file of either side."""
        labels = "|".join(re.escape(label) for label in ("HEAD", *sides))
        found = re.fullmatch(rf"(.+)~(?:{labels})(?:_[0-9]+)?", path, re.DOTALL)
        if found is None or any(self._entry(clone, rev, path) is not None for rev in sides):
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
        if base is None and not path.lower().endswith(_LINE_FILES):
            return None
        blobs = self._blob_lines(worktree, [ours.sha, theirs.sha, *([base.sha] if base is not None else [])])
        if blobs is None:
            return None
        ours_lines, theirs_lines = blobs[0], blobs[1]
        if any(b"\0" in line for line in ours_lines + theirs_lines):
            return None
        # a file both created: their common first lines, a header, stand in for the base
        base_lines = blobs[2] if base is not None else list(_common_prefix(ours_lines, theirs_lines))
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

    def _blob_lines(self, clone: Path, shas: list[str]) -> list[list[bytes]] | None:
        """Each blob's lines as bytes, ends kept (one ``cat-file --batch``); None if one is missing."""
        blobs = self.git.objects(clone, shas)
        if any(found is None or found[0] != "blob" for found in blobs):
            return None
        return [found[1].splitlines(keepends=True) for found in blobs if found is not None]


def _common_prefix(ours: list[bytes], theirs: list[bytes]) -> Iterator[bytes]:
    for a, b in zip(ours, theirs, strict=False):
        if a != b:
            return
        yield a
