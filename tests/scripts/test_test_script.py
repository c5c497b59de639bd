"""``scripts/test`` installs the test extras when any one is missing, not only pytest:
without pytest-timeout, pytest warns ``Unknown config option: timeout`` and runs unbounded."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_extra_is_checked() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    modules = {re.split(r"[<>=!~\[ ]", spec, maxsplit=1)[0].replace("-", "_") for spec in extras}
    script = (REPO / "scripts" / "test").read_text()
    check = script[script.index("if ! ") : script.index("pip install")]
    missing = sorted(m for m in modules if not re.search(rf"\b{m}\b", check))
    assert not missing, f"scripts/test does not check for {missing}"
