"""What a step changed, and tally commits that apply a change on top of ``ground-truth``.

A step's change is its node commit against that commit's first parent (the node branch
as prepared: ground-truth taken in). It is compared between instances by an id over the
sorted ``(path, mode, blob)`` entries it touched (``-`` for a deletion), never by whole
trees, which also hold bases the instances may not share.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mao.datasets.core import DatasetCore
from mao.datasets.git import Git
from mao.datasets.refs import GROUND_TRUTH
from mao.datasets.retries import PushRetries
from mao.datasets.trailers import LogFormat, format_message
from mao.errors import GitError, NotFound

__all__ = ["Changes", "Entry", "TallyCommit", "output_id"]

logger = logging.getLogger(__name__)

_ZERO = "0" * 40
_TALLY_LOG = LogFormat("%H")

PREVIOUS_TALLY = "Mao-Previous-Tally"
"""The trailer of a tally commit naming the dataset's previous tally commit (``none``: the first)."""
TALLY_SEQ = "Mao-Tally-Seq"
"""The trailer numbering a dataset's tally commits 1, 2, 3…: with :data:`PREVIOUS_TALLY`, a hash chain."""


@dataclass(frozen=True)
class TallyLink:
    """A tally commit's place in its dataset's tally log: its ``sha`` and ``seq``."""

    sha: str
    seq: int


def tally_seq(trailers: Mapping[str, str]) -> int | None:
    """The ``Mao-Tally-Seq`` of a tally commit's trailers (None: written before the log)."""
    value = trailers.get(TALLY_SEQ, "")
    return int(value) if value.isdigit() else None


def last_tally(git: Git, clone: Path, head: str) -> TallyLink | None:
    """The newest tally commit on ``head``'s first-parent line and its place in the log (a
    tally written before the log began counts as 0), or None."""
    out = git.run(
        ["log", "-z", "--first-parent", "-1", "-E", "--grep=^Mao-Vote-For: ", _TALLY_LOG.option, head, "--"], clone
    )
    for (sha,), found in _TALLY_LOG.parse(out):
        if "Mao-Vote-For" in found:
            return TallyLink(sha.strip(), tally_seq(found) or 0)
    return None


def tally_at(git: Git, clone: Path, head: str, seq: int) -> str | None:
    """The tally commit numbered ``seq`` on ``head``'s first-parent line, or None."""
    out = git.run(
        ["log", "-z", "--first-parent", "--fixed-strings", f"--grep={TALLY_SEQ}: {seq}", _TALLY_LOG.option, head, "--"],
        clone,
    )
    for (sha,), found in _TALLY_LOG.parse(out):
        if "Mao-Vote-For" in found and tally_seq(found) == seq:
            return sha.strip()
    return None


@dataclass(frozen=True)
class Entry:
    """One path a change touched: its new mode and blob, or ``blob=None`` for a deletion."""

    path: str
    mode: str
    blob: str | None


@dataclass(frozen=True)
class TallyCommit:
    """A tally commit to write for (``pipeline``, ``step``, ``slot``): the change of node
    ``commit`` applied on top of ground-truth, with ``message`` and ``trailers``."""

    pipeline: str
    step: str
    slot: str
    commit: str
    message: str
    trailers: dict[str, str]


def output_id(entries: list[Entry]) -> str:
    """A stable id of a change: sha256 over its sorted entries."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.path}\0{entry.mode if entry.blob else '-'}\0{entry.blob or '-'}\n".encode())
    return digest.hexdigest()


class Changes:
    """Changes of node commits in ``core``'s clones, and the tally commits that apply them."""

    def __init__(self, core: DatasetCore, retries: PushRetries) -> None:
        self.core = core
        self.refs = core.refs
        self.retries = retries
        self.git = core.git

    def change_of(self, name: str, commit: str) -> list[Entry]:
        """The entries ``commit`` changed against its first parent (everything, for a root commit)."""
        with self.core.lock(name):
            clone = self.core.existing_clone(name)
            return self._change(clone, commit)

    def _change(self, clone: Path, commit: str) -> list[Entry]:
        sha = self.refs.rev(clone, commit)
        if sha is None:
            raise NotFound(f"commit {commit} is not in the clone")
        parent = self.refs.rev(clone, f"{sha}^1")
        base = parent or self.git.run(["mktree"], clone, input="").strip()
        raw = self.git.run(["diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", base, sha], clone)
        fields = raw.split("\0")
        entries: list[Entry] = []
        for i in range(0, len(fields) - 1, 2):
            meta, path = fields[i], fields[i + 1]
            if not meta.startswith(":"):
                continue
            _old_mode, new_mode, _old, new, status = meta[1:].split(" ")[:5]
            if status.startswith("D"):
                entries.append(Entry(path, "000000", None))
            else:
                entries.append(Entry(path, new_mode, new))
        return entries

    # ------------------------------------------------------------------ tallies

    def find_tally(self, name: str, pipeline: str, step: str, slot: str) -> dict[str, Any] | None:
        """The tally commit of (pipeline, step, slot) in ``origin/ground-truth`` after a fetch, or None:
        ``{"sha": ..., "trailers": {...}}``."""
        with self.core.lock(name):
            clone = self.core.existing_clone(name)
            self.core.fetch(clone)
            return self._find_tally(clone, pipeline, step, slot)

    def _find_tally(self, clone: Path, pipeline: str, step: str, slot: str) -> dict[str, Any] | None:
        head = self.refs.rev(clone, f"refs/remotes/origin/{GROUND_TRUTH}")
        if head is None:
            return None
        out = self.git.run(
            ["log", "-z", "--fixed-strings", f"--grep=Mao-Slot: {slot}", _TALLY_LOG.option, head],
            clone,
        )
        for (sha,), found in _TALLY_LOG.parse(out):
            if (
                found.get("Mao-Slot") == slot
                and found.get("Mao-Pipeline") == pipeline
                and found.get("Mao-Step") == step
                and "Mao-Vote-For" in found
            ):
                return {"sha": sha.strip(), "trailers": found}
        return None

    def write_tally(self, name: str, tally: TallyCommit) -> tuple[str, bool]:
        """Apply the change of node ``tally.commit`` on top of ``origin/ground-truth`` as one commit
        with its trailers and push it; return (tally commit, created).

        The caller holds the federation lock on the dataset. If a tally commit of this
        (pipeline, step, slot) is there already, nothing is written and that one is
        returned. A refused push is retried from a fresh fetch.
        """

        def attempt(_: int) -> tuple[str, bool] | GitError:
            with self.core.lock(name):
                clone = self.core.existing_clone(name)
                self.core.fetch(clone)
                existing = self._find_tally(clone, tally.pipeline, tally.step, tally.slot)
                if existing is not None:
                    return existing["sha"], False
                sha = self._tally_commit(clone, tally.commit, tally.message, tally.trailers)
                try:
                    self.git.run(
                        ["push", "--quiet", "--no-verify", "origin", f"{sha}:refs/heads/{GROUND_TRUTH}"], clone
                    )
                except GitError as exc:  # refused (ground-truth moved), or no answer
                    return exc
                self.core.fetch(clone)
                return sha, True

        return self.retries.until_done(name, GROUND_TRUTH, f"wrote the tally of slot {tally.slot}", attempt)

    def _tally_commit(self, clone: Path, commit: str, message: str, trailers: dict[str, str]) -> str:
        base = (
            self.refs.rev(clone, f"refs/remotes/origin/{GROUND_TRUTH}")
            or self.refs.agreed(clone)
            or self.refs.empty_root(clone)
        )
        entries = self._change(clone, commit)
        previous = last_tally(self.git, clone, base)
        trailers = {
            **trailers,
            PREVIOUS_TALLY: previous.sha if previous else "none",
            TALLY_SEQ: str(previous.seq + 1 if previous else 1),
        }
        records = [f"{e.mode} {e.blob}\t{e.path}" if e.blob else f"0 {_ZERO}\t{e.path}" for e in entries]
        tree = self.git.tree_with(clone, base, records)
        text = format_message(message, trailers)
        return self.git.run(["commit-tree", tree, "-p", base], clone, input=text).strip()
