"""Tools and git helpers shared by the agreement tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

IMAGE = "img/collect"


def write_metrics(spec, on_log) -> int:
    """Every instance's collector appends one row to the same metrics.csv."""
    with (spec.output_dir / "metrics.csv").open("a") as fh:
        fh.write(f"{spec.env['MAO_INSTANCE']},{spec.env['MAO_RUN_ID']},{spec.env['MAO_SLOT']}\n")
    return 0


def write_snapshot(spec, on_log) -> int:
    """A collector whose output depends only on the slot (what instances agree on)."""
    (spec.output_dir / "snapshot.csv").write_text(f"slot,{spec.env['MAO_SLOT']}\nvalue,42\n")
    return 0


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True).stdout


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    result = subprocess.run(
        ["git", "--git-dir", str(repo), "merge-base", "--is-ancestor", ancestor, descendant],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def trailers(repo: Path, ref: str) -> dict[str, str]:
    out = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", ref)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
