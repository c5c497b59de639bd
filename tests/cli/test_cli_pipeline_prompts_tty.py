"""``maoctl pipeline add`` at a real terminal (a pseudo-terminal): a wrong answer is refused
with its reason and asked again, and the answers before it are kept."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

try:
    import pexpect
except ImportError:  # pragma: no cover - depends on the test extras
    pexpect = None

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _needs_pexpect() -> None:
    if pexpect is None:
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail("pexpect is not installed (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip("pexpect is not installed")


def test_a_typo_is_asked_again_at_the_terminal(cli, server, tmp_path):
    assert cli("tool", "add", "--name", "tty-tool", "--image", "img/tty").code == 0
    assert cli("repo", "add", "--name", "tty-rows", "--register").code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k.startswith("MAO_TEST_")}
    env.update(HOME=str(tmp_path), TERM="dumb", NO_COLOR="1", COLUMNS="200")
    child = pexpect.spawn(
        sys.executable,
        [str(REPO / "maoctl.py"), "--url", server.url, "pipeline", "add"],
        cwd=str(REPO),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 200),
    )
    try:
        for prompt, answer in [
            ("Pipeline name:", "tty-pipeline"),
            ("Description:", "typed at a terminal"),
            ("Step name:", "collect"),
            ("Tool:", "tty-tol"),
        ]:
            child.expect_exact(prompt)
            child.sendline(answer)
        child.expect_exact("Error: no tool tty-tol in the registry")
        child.expect_exact("Tool:")  # asked again; nothing before it is asked again
        child.sendline("tty-tool")
        for prompt, answer in [
            ("Input dataset (empty for none):", ""),
            ("Output dataset:", "tty-rows"),
            ("Command (empty for the image's default):", ""),
            ("Environment, KEY=VALUE", ""),
            ("Mount the Docker socket? [y/N]:", "n"),
            ("Add another step? [y/N]:", "n"),
        ]:
            child.expect_exact(prompt)
            child.sendline(answer)
        child.expect_exact("pipeline tty-pipeline defined with 1 step(s)")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    shown = json.loads(cli("pipeline", "get", "--name", "tty-pipeline", "--json").out)
    assert shown["description"] == "typed at a terminal"
    assert [(s["name"], s["tool"], s["output_dataset"]) for s in shown["steps"]] == [
        ("collect", "tty-tool", "tty-rows")
    ]
