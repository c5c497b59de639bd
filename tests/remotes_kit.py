"""Where tests keep local git remotes: allowed as ``local_remote_roots`` for every test."""

from __future__ import annotations

import os

import pytest


def allowed_remote_roots(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The session's temporary directory, the services' git server root, and ``/srv``
    (placeholder remotes of tests that register a dataset and never clone it)."""
    roots = [str(tmp_path_factory.getbasetemp()), "/srv"]
    if os.environ.get("MAO_TEST_SSH_REPO_ROOT"):
        roots.append(os.environ["MAO_TEST_SSH_REPO_ROOT"])
    return roots
