"""A remote's ``ground-truth`` commit, asked with one ``git ls-remote`` (no clone, no fetch)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from mao.datasets.git import Git
from mao.errors import InvalidInput
from mao.validation import check_git_url, check_local_remote

GROUND_TRUTH_REF = "refs/heads/ground-truth"
_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class GitSource(Protocol):
    """Where the git runner and the allowed local remotes come from (:class:`~mao.datasets.manager.DatasetManager`)."""

    @property
    def git(self) -> Git: ...

    @property
    def local_remote_roots(self) -> Sequence[Path] | None: ...


class RemoteHeads:
    """Reads a remote's ``ground-truth`` through the instance's :class:`~mao.datasets.git.Git`
    runner (its SSH key, timeouts and protocol allowlist); ``source`` is a provider (the
    datasets are built when first needed)."""

    def __init__(self, source: Callable[[], GitSource]) -> None:
        self._source = source

    def ground_truth(self, url: str) -> str | None:
        """The commit ``ground-truth`` points at on ``url``, None if it has none yet; GitError
        when the remote cannot be reached, InvalidInput for a URL this instance refuses."""
        source = self._source()
        if not check_git_url(url):
            raise InvalidInput(f"invalid git URL {url!r}")
        if source.local_remote_roots is not None:
            check_local_remote(url, source.local_remote_roots)
        out = source.git.run(["ls-remote", "--", url, GROUND_TRUTH_REF])
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.strip() == GROUND_TRUTH_REF and _SHA_RE.fullmatch(sha.strip()):
                return sha.strip()
        return None
