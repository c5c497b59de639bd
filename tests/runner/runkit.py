"""Shared bits of the runner tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

TWO_STEPS = {
    "name": "two",
    "steps": [
        {"name": "collect", "tool": "collector", "output_dataset": "observations", "env": {"VALUE": "7"}},
        {"name": "analyse", "tool": "analyser", "input_dataset": "observations", "output_dataset": "insights"},
    ],
}


GIT_ID = ("-c", "user.name=other", "-c", "user.email=other@example.org")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True).stdout
