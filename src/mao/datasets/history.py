"""Reading what the datasets hold: a branch's history with each commit's trailers, a
branch's newest commit, one file of the agreed state."""

from __future__ import annotations

from typing import Any

from mao.datasets.core import DatasetCore
from mao.datasets.refs import GROUND_TRUTH, check_branch, check_ref
from mao.datasets.trailers import LogFormat
from mao.errors import InvalidInput, NotFound, PayloadTooLarge

__all__ = ["History"]

_LOG = LogFormat("%H", "%P", "%an", "%ae", "%aI", "%s")


class History:
    """Reads the clones of ``core``."""

    def __init__(self, core: DatasetCore) -> None:
        self.core = core
        self.refs = core.refs
        self.git = core.git

    def log(self, name: str, url: str, ref: str = GROUND_TRUTH, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` commits of ``origin/<ref>`` (or from commit ``ref``), newest first,
        after a fetch: sha, parents, author, email, date, subject and trailers."""
        check_ref(ref)
        if limit < 1:
            raise InvalidInput("limit must be at least 1")
        with self.core.lock(name):
            clone = self.core.ensure_clone(name, url)
            sha = self.refs.resolve(clone, ref)
            if sha is None:
                return []
            out = self.git.run(["log", "-z", f"--max-count={limit}", _LOG.option, sha], clone)
        entries = []
        for (sha_, parents, author, email, date, subject), trailers in _LOG.parse(out):
            entries.append(
                {
                    "sha": sha_.strip(),
                    "parents": parents.split(),
                    "author": author,
                    "email": email,
                    "date": date,
                    "subject": subject,
                    "trailers": trailers,
                }
            )
        return entries

    def head(self, name: str, ref: str) -> str | None:
        """The newest commit known locally for branch ``ref`` (no fetch), or None."""
        check_branch(ref)
        clone = self.core.cloned(name)
        if clone is None:
            return None
        with self.core.lock(name):
            return self.refs.tip(clone, ref)

    def read_agreed_file(self, name: str, url: str, path: str, max_bytes: int) -> bytes:
        """The content of ``path`` in the dataset's ``ground-truth`` (as of a fresh fetch).

        ``path`` is relative, without ``.``/``..`` segments or ``.git``; NotFound when
        ground-truth lacks it or it is a directory; PayloadTooLarge over ``max_bytes``.
        """
        parts = path.split("/")
        if (
            not path
            or len(path) > 1024
            or any(part in ("", ".", "..") or part.lower() == ".git" for part in parts)
            or any(ch in path for ch in ("\\", "\0", ":"))
        ):
            raise InvalidInput(f"invalid file path {path!r}: give a path relative to the dataset, without '..'")
        with self.core.lock(name):
            clone = self.core.ensure_clone(name, url)
            sha = self.refs.resolve(clone, GROUND_TRUTH)
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
