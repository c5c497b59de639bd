"""A node commit's objects carried with a merge train's post, instead of through the remote.

A rider of a merge train (:mod:`mao.trains`) waits for whoever holds the dataset's lock to
merge its node commit. When the commit is small, its objects travel with the rider's post as
a pack of what ``ground-truth`` (the commit ``onto`` the rider worked from) lacks: the holder
takes them in without a fetch, and the rider does not wait for its node branch's push before
boarding. A large commit goes through the remote as before.

The holder takes a pack only when it has ``onto``, checks every object in it
(``index-pack --strict``, as ``transfer.fsckObjects`` does) and then that the commit and
everything it reaches are present (``rev-list --objects``): a post cannot slip a malformed
object in, and a commit missing anything is not merged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mao.datasets.git import Git
from mao.errors import GitError

__all__ = ["Carried", "NodePacks", "is_object_name"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Carried:
    """A node ``commit`` a clone should have, with the ``pack`` of its objects beyond
    ground-truth commit ``onto`` when it travels with one (None: through the remote)."""

    commit: str
    onto: str | None = None
    pack: bytes | None = None


class NodePacks:
    """Packs a node commit's new objects, and takes such a pack into a clone."""

    def __init__(self, git: Git) -> None:
        self.git = git

    def pack(self, clone: Path, commit: str, onto: str, limit: int) -> bytes | None:
        """The objects of ``commit`` that ``onto`` does not reach, as a self-contained pack of at
        most ``limit`` bytes; None when larger (or when git cannot make it)."""
        size = self.git.call(["rev-list", "--objects", "--disk-usage", "--end-of-options", commit, f"^{onto}"], clone)
        if size.returncode != 0 or int(size.stdout.strip() or 0) > limit:
            return None
        args = ["pack-objects", "--stdout", "--revs", "--quiet", "--delta-base-offset"]
        packed = self.git.call_bytes(args, clone, f"{commit}\n^{onto}\n".encode())
        if packed.returncode != 0 or len(packed.stdout) > limit:
            return None
        return packed.stdout

    def receive(self, clone: Path, riders: Sequence[Carried]) -> set[str]:
        """Take the riders' packs into ``clone`` (one ``index-pack`` each) and return the riders'
        commits that are complete there then, whether a pack or a fetch brought them (a pack is
        taken only when ``onto`` is known here, and refused when an object in it is not sound)."""
        riders = [rider for rider in riders if is_object_name(rider.commit)]
        known = self.git.existing_commits(clone, [sha for rider in riders for sha in (rider.commit, rider.onto) if sha])
        taken: list[Carried] = []
        for rider in riders:
            if rider.commit in known or rider.pack is None or rider.onto not in known:
                continue
            try:
                result = self.git.call_bytes(["index-pack", "--stdin", "--strict"], clone, rider.pack)
            except GitError as exc:  # ran past the timeout, say
                logger.warning("the pack of node commit %s was not taken: %s", rider.commit, exc.message)
                continue
            if result.returncode == 0:
                taken.append(rider)
            else:
                logger.warning("the pack of node commit %s was refused: %s", rider.commit, _error(result.stderr))
        complete = {rider.commit for rider in riders if rider.commit in known}
        if taken and self._complete(clone, taken):
            return complete | {rider.commit for rider in taken}
        return complete | {rider.commit for rider in taken if self._complete(clone, [rider])}

    def _complete(self, clone: Path, riders: Sequence[Carried]) -> bool:
        """Whether every object the riders' commits reach beyond their ``onto`` is in ``clone``."""
        args = [
            "rev-list",
            "--objects",
            "--quiet",
            "--end-of-options",
            *(r.commit for r in riders),
            *(f"^{r.onto}" for r in riders if r.onto),
        ]
        return self.git.call(args, clone).returncode == 0


def is_object_name(text: str | None) -> bool:
    """Whether ``text`` is a full object name (40 or 64 lowercase hex digits), nothing git reads otherwise."""
    return text is not None and len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def _error(stderr: bytes) -> str:
    return stderr.decode("utf-8", "replace").strip()
