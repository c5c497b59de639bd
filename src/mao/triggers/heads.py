"""A remote's ``ground-truth`` commit, asked with one ``git ls-remote`` (no clone, no fetch)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from mao.datasets.git import Git
from mao.errors import InvalidInput
from mao.validation import check_git_url, check_local_remote

GROUND_TRUTH_REF = "refs/heads/ground-truth"
_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class RemoteHeads:
    """Reads a remote's ``ground-truth`` through the instance's :class:`~mao.datasets.git.Git`
    runner (its SSH key, timeouts and protocol allowlist)."""

    def __init__(self, git: Git, local_remote_roots: Sequence[Path] | None = None) -> None:
        self.git = git
        self.local_remote_roots = local_remote_roots

    def ground_truth(self, url: str) -> str | None:
        """The commit ``ground-truth`` points at on ``url``, None if it has none yet; GitError
        when the remote cannot be reached, InvalidInput for a URL this instance refuses."""
        if not check_git_url(url):
            raise InvalidInput(f"invalid git URL {url!r}")
        if self.local_remote_roots is not None:
            check_local_remote(url, self.local_remote_roots)
        out = self.git.run(["ls-remote", "--", url, GROUND_TRUTH_REF])
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.strip() == GROUND_TRUTH_REF and _SHA_RE.fullmatch(sha.strip()):
                return sha.strip()
        return None
