"""The house habits, checked with the tests: ruff (lint and format) on src/ and tests/, mypy --strict on
src/ (pyproject's [tool.mypy]), the import contracts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_lint_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_kept() -> None:
    result = _run(sys.executable, "-m", "ruff", "format", "--check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_src() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_hold() -> None:
    """The layers (edge -> wiring -> services -> adapters -> core), nothing below the edge
    importing the wiring, no cycle between sibling packages: pyproject's [tool.importlinter]."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_of_src_is_in_an_import_cycle() -> None:
    """Counting every import: those under TYPE_CHECKING and those inside functions too."""
    import grimp

    sys.path.insert(0, str(ROOT / "src"))
    try:
        graph = grimp.build_graph("mao", exclude_type_checking_imports=False)
    finally:
        sys.path.remove(str(ROOT / "src"))
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(imported=module, importer=imported):
                cycles.append(f"{module} -> {imported}")
    assert cycles == [], "import cycles through: " + ", ".join(cycles)
