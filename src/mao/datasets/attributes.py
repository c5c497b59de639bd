"""The merge rules a dataset declares in its own ``.gitattributes``, as git users expect them.

========================  ==========================================================
attribute                 what a merge into ground-truth does where both sides changed
========================  ==========================================================
``merge=union``           both sides' lines are kept, as git's ``union`` driver does
``-merge``, ``binary``    no line merging: the newest side (the node's) wins and the
(or ``merge=binary``)     merge commit names the file in ``Mao-Superseded``
nothing declared          the built-in rules: rows both sides only appended are kept
                          (for a file both created, when it is ``.csv``, ``.tsv``,
                          ``.txt``, ``.log``, ``.jsonl`` or ``.ndjson``); anything else
                          takes the newest side and is named in ``Mao-Superseded``
========================  ==========================================================

The attributes that count are those of the commit being merged into, ground-truth: they
are read with ``git check-attr --cached`` from an index holding ground-truth's tree, never
from a worktree a tool wrote in or from the node's commit. A tool therefore cannot change
the rules of its own merge: a ``.gitattributes`` it commits applies from the merge after
the one that brought it into ground-truth. (Git's own merge in the ground-truth worktree
reads the same file, as checked out there from ground-truth before the merge.)
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from mao.datasets.git import Git, temporary_index

__all__ = ["MergeAttributes", "MergeRule"]


class MergeRule(StrEnum):
    """How a file both sides changed is merged."""

    DEFAULT = "default"
    """The built-in rules: appended rows kept, else the newest side."""
    UNION = "union"
    """Both sides' lines kept (``merge=union``)."""
    SINGLE = "single"
    """One value, never merged line by line: the newest side (``-merge``, ``binary``)."""


def _rule(value: str) -> MergeRule:
    """The rule for a value of the ``merge`` attribute as ``check-attr`` prints it."""
    if value in ("unset", "binary"):
        return MergeRule.SINGLE
    if value == "union":
        return MergeRule.UNION
    return MergeRule.DEFAULT  # unspecified, set, text, or a driver this instance does not define


class MergeAttributes:
    """Reads the ``merge`` attribute of paths as a commit's ``.gitattributes`` files set it."""

    def __init__(self, git: Git) -> None:
        self.git = git

    def rules(self, clone: Path, commit: str, paths: Sequence[str]) -> dict[str, MergeRule]:
        """The rule of each of ``paths`` by the attributes in ``commit``'s tree (two git processes)."""
        if not paths:
            return {}
        with temporary_index(clone) as env:
            self.git.run(["read-tree", commit], clone, env=env)
            out = self.git.run(
                ["check-attr", "--cached", "-z", "--stdin", "merge"],
                clone,
                input="".join(f"{path}\0" for path in paths),
                env=env,
                exact=True,
            )
        fields = out.split("\0")
        rules = dict.fromkeys(paths, MergeRule.DEFAULT)
        for i in range(0, len(fields) - 2, 3):
            path, _attribute, value = fields[i : i + 3]
            if path in rules:
                rules[path] = _rule(value)
        return rules

    def combined(self, clone: Path, merged_tree: str, ours: str, theirs: str) -> list[str]:
        """The paths whose content in ``merged_tree`` is neither ``ours`` nor ``theirs``: both
        sides changed them and git merged the changes line by line (one git process)."""
        out = self.git.run(
            ["diff", "--no-ext-diff", "--no-textconv", "--no-renames", "-c", "--name-only", "-z"]
            + [merged_tree, ours, theirs],
            clone,
            exact=True,
        )
        return sorted({path for path in out.split("\0") if path})
