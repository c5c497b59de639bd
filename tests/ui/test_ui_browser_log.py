"""The run page's live log in a real browser (Debian's Chromium, Playwright) against a real
``maoctl serve`` and Docker Engine: it keeps its last lines while following the end, and its
link loads the earlier ones again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_kit import Served

from mao.ui.live import PAGE_LINES

pytestmark = [pytest.mark.browser, pytest.mark.docker]

IMAGE = "mao/busybox:local"
MANY = PAGE_LINES + 500
# a pause for the page to open, many lines, a pause for the page to show them all
SCRIPT = f'sleep 3; i=0; while [ $i -lt {MANY} ]; do echo "many $i"; i=$((i+1)); done; sleep 2'


@pytest.fixture
def served(tmp_path: Path, docker_host: str) -> Iterator[Served]:
    server = Served(tmp_path / "data", docker_host).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def test_the_live_log_keeps_its_last_lines_and_loads_earlier_ones(browser, served):
    served.api("POST", "/registry/tools", json={"name": "chatty", "image": IMAGE})
    served.api("POST", "/bare-repo/init", json={"name": "chat-data", "register": True})
    step = {"name": "talk", "tool": "chatty", "output_dataset": "chat-data", "cmd": ["sh", "-c", SCRIPT]}
    served.api("POST", "/pipeline/init", json={"name": "chat", "steps": [step]})
    run_id = served.api("POST", "/pipeline/run", json={"name": "chat"}).json()["run_id"]

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    context.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page = context.new_page()
    page.goto(f"{served.url}/ui/runs/{run_id}")
    page.locator("#run-status", has_text="succeeded").wait_for(timeout=60_000)
    page.locator("#log").get_by_text(re.compile(rf"many {MANY - 1}$")).wait_for(timeout=10_000)

    def shown() -> list[str]:
        return page.locator("#log > .line").evaluate_all("rows => rows.map(r => r.lastChild.textContent.trim())")

    lines = [line for line in shown() if line.startswith("many ")]
    assert len(shown()) <= PAGE_LINES
    assert lines[-1] == f"many {MANY - 1}" and len(lines) >= PAGE_LINES - 5  # the step's own notes are lines too
    link = page.locator("#log > a.earlier")
    assert link.count() == 1
    first_shown = int(lines[0].split()[1])
    link.click()
    page.locator("#log").get_by_text(re.compile(rf"many {first_shown - 1}$")).wait_for(timeout=10_000)
    after = [line for line in shown() if line.startswith("many ")]
    assert after == [f"many {i}" for i in range(MANY)]  # every line once, in order
    assert page.locator("#log > a.earlier").count() == 0  # the first lines: nothing before them
    assert errors == []
    context.close()
