"""What a step changed, and tally commits that apply a change on top of ``ground-truth``.

A step's change is its node commit against that commit's first parent (the node branch
as prepared: ground-truth taken in). It is compared between instances by an id over the
sorted ``(path, mode, blob)`` entries it touched (``-`` for a deletion), never by whole
trees, which also hold bases the instances may not share.

A mixin of :class:`~mao.datasets.manager.DatasetManager`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mao.datasets.groundtruth import GROUND_TRUTH
from mao.errors import GitError, InvalidInput, NotFound

logger = logging.getLogger(__name__)

_EMPTY_TREE_INPUT = ""
_ZERO = "0" * 40


@dataclass(frozen=True)
class Entry:
    """One path a change touched: its new mode and blob, or ``blob=None`` for a deletion."""

    path: str
    mode: str
    blob: str | None


def output_id(entries: list[Entry]) -> str:
    """A stable id of a change: sha256 over its sorted entries."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.path}\0{entry.mode if entry.blob else '-'}\0{entry.blob or '-'}\n".encode())
    return digest.hexdigest()


class ChangesMixin:
    git: Any
    push_retries: int
    retry_delay: float

    def change_of(self, name: str, commit: str) -> list[Entry]:
        """The entries ``commit`` changed against its first parent (everything, for a root commit)."""
        with self._lock(name):  # type: ignore[attr-defined]
            clone = self._existing_clone(name)  # type: ignore[attr-defined]
            return self._change(clone, commit)

    def _change(self, clone: Path, commit: str) -> list[Entry]:
        sha = self._rev(clone, commit)  # type: ignore[attr-defined]
        if sha is None:
            raise NotFound(f"commit {commit} is not in the clone")
        parent = self._rev(clone, f"{sha}^1")  # type: ignore[attr-defined]
        base = parent or self.git.run(["mktree"], clone, input=_EMPTY_TREE_INPUT).strip()
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

    def find_tally(self, name: str, pipeline: str, step: str, slot: str) -> dict[str, Any] | None:
        """The tally commit of (pipeline, step, slot) in ``origin/ground-truth`` after a fetch, or None."""
        with self._lock(name):  # type: ignore[attr-defined]
            clone = self._existing_clone(name)  # type: ignore[attr-defined]
            self._fetch(clone)  # type: ignore[attr-defined]
            return self._find_tally(clone, pipeline, step, slot)

    def _find_tally(self, clone: Path, pipeline: str, step: str, slot: str) -> dict[str, Any] | None:
        head = self._rev(clone, f"refs/remotes/origin/{GROUND_TRUTH}")  # type: ignore[attr-defined]
        if head is None:
            return None
        from mao.datasets.manager import _FIELD, _TRAILERS_FORMAT

        out = self.git.run(
            [
                "log",
                "-z",
                "--fixed-strings",
                f"--grep=Mao-Slot: {slot}",
                f"--format=%H{_FIELD}{_TRAILERS_FORMAT}",
                head,
            ],
            clone,
        )
        for record in out.split("\0"):
            if _FIELD not in record:
                continue
            sha, raw = record.split(_FIELD, 1)
            found = self._parse_trailers(raw.strip("\n"))  # type: ignore[attr-defined]
            if (
                found.get("Mao-Slot") == slot
                and found.get("Mao-Pipeline") == pipeline
                and found.get("Mao-Step") == step
                and "Mao-Vote-For" in found
            ):
                return {"sha": sha.strip(), "trailers": found}
        return None

    def write_tally(
        self, name: str, pipeline: str, step: str, slot: str, commit: str, message: str, trailers: dict[str, str]
    ) -> tuple[str, bool]:
        """Apply the change of node ``commit`` on top of ``origin/ground-truth`` as one commit with
        ``trailers`` and push it; return (tally commit, created).

        The caller holds the federation lock on the dataset. If a tally commit of this
        (pipeline, step, slot) is there already, nothing is written and that one is
        returned. A refused push is retried from a fresh fetch.
        """
        attempts = self.push_retries + 1
        last: GitError | None = None
        for attempt in range(attempts):
            if attempt:
                self._retrying(name, GROUND_TRUTH, attempt)  # type: ignore[attr-defined]
                time.sleep(self.retry_delay * 2 ** (attempt - 1))
            with self._lock(name):  # type: ignore[attr-defined]
                clone = self._existing_clone(name)  # type: ignore[attr-defined]
                self._fetch(clone)  # type: ignore[attr-defined]
                existing = self._find_tally(clone, pipeline, step, slot)
                if existing is not None:
                    return existing["sha"], False
                sha = self._tally_commit(clone, commit, message, trailers)
                try:
                    self.git.run(
                        ["push", "--quiet", "--no-verify", "origin", f"{sha}:refs/heads/{GROUND_TRUTH}"], clone
                    )
                except GitError as exc:
                    last = exc
                    logger.warning(
                        "dataset %s: push of the tally of %s failed (attempt %d of %d): %s",
                        name,
                        slot,
                        attempt + 1,
                        attempts,
                        exc.message,
                    )
                    continue
                self._fetch(clone)  # type: ignore[attr-defined]
                return sha, True
        assert last is not None
        raise GitError(
            f"could not push the tally of slot {slot} to {GROUND_TRUTH} of dataset {name}: {last.message}",
            details=last.details,
        )

    def _tally_commit(self, clone: Path, commit: str, message: str, trailers: dict[str, str]) -> str:
        base = (
            self._rev(clone, f"refs/remotes/origin/{GROUND_TRUTH}")  # type: ignore[attr-defined]
            or self._agreed(clone)  # type: ignore[attr-defined]
            or self._empty_root(clone)  # type: ignore[attr-defined]
        )
        entries = self._change(clone, commit)
        fd, index = tempfile.mkstemp(prefix=".tally-index-", dir=clone / ".git")
        os.close(fd)
        os.unlink(index)
        env = {"GIT_INDEX_FILE": index}
        try:
            self.git.run(["read-tree", base], clone, env=env)
            # NUL-separated: a path a tool named may hold a newline
            lines = "".join(f"{e.mode} {e.blob}\t{e.path}\0" if e.blob else f"0 {_ZERO}\t{e.path}\0" for e in entries)
            if lines:
                self.git.run(["update-index", "-z", "--index-info"], clone, input=lines, env=env)
            tree = self.git.run(["write-tree"], clone, env=env).strip()
        finally:
            Path(index).unlink(missing_ok=True)
        text = self._message(clone, message, trailers)  # type: ignore[attr-defined]
        return self.git.run(["commit-tree", tree, "-p", base], clone, input=text).strip()


def check_commit(sha: str) -> str:
    if not isinstance(sha, str) or len(sha) < 7 or any(c not in "0123456789abcdef" for c in sha):
        raise InvalidInput(f"invalid commit sha {sha!r}")
    return sha
