"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real
``maoctl serve`` running a busybox tool on the real Docker Engine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_kit import DESKTOP, PHONE, TOKEN, Served, Watch, shoot

pytestmark = [pytest.mark.browser, pytest.mark.docker]

IMAGE = "mao/busybox:local"
# the tool: a line, a pause longer than one event stream lasts (the page resumes it), a file, another line
SCRIPT = "echo ui-line-one; sleep 12; date > /usr/src/app/data/seen.txt; echo ui-line-two"


@pytest.fixture
def served(tmp_path: Path, docker_host: str) -> Iterator[Served]:
    server = Served(tmp_path / "data", docker_host).start()
    try:
        yield server
    finally:
        server.stop()


def register(server: Served) -> None:
    server.api("POST", "/registry/tools", json={"name": "ui-tool", "image": IMAGE})
    server.api("POST", "/bare-repo/init", json={"name": "ui-data", "register": True})
    step = {"name": "say", "tool": "ui-tool", "output_dataset": "ui-data", "cmd": ["sh", "-c", SCRIPT]}
    server.api("POST", "/pipeline/init", json={"name": "ui-demo", "description": "says two lines", "steps": [step]})


def test_run_now_shows_the_run_succeed_live_and_every_page_renders(browser, served, artifacts):
    assert f"dashboard: {served.url}/ui" in served.log()  # maoctl serve says where the dashboard is
    register(served)
    context = browser.new_context(viewport=DESKTOP)
    watch = Watch(context, served)
    page = context.new_page()
    page.goto(served.url + "/ui/pipelines")
    card = page.locator("#pipeline-ui-demo")
    assert "never run" in card.inner_text()
    card.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r".*/ui/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded
    assert page.locator("#run-status").inner_text() in ("pending", "running")
    page.locator("#log").get_by_text("ui-line-one").wait_for(timeout=30_000)
    page.locator("#run-status", has_text="succeeded").wait_for(timeout=60_000)
    page.locator("#log").get_by_text("ui-line-two").wait_for(timeout=10_000)
    assert page.evaluate("window.__sameDocument") is True
    # the steps table was refreshed at the end: the image digest and the commit are there
    run = served.api("GET", f"/runs/{run_id}").json()
    assert run["status"] == "succeeded"
    step = run["steps"][0]
    page.locator("#steps", has_text=step["output_commit"][:10]).wait_for(timeout=10_000)
    if step["image_digest"]:
        assert step["image_digest"] in page.locator("#steps").inner_text()
    assert page.locator("#cancel").count() == 0
    assert page.locator('tr[data-step="say"] .step-status').inner_text() == "succeeded"
    # every stored line once, in order, across the stream's resumption
    shown = [int(i) for i in page.locator("#log .line").evaluate_all("rows => rows.map(r => r.dataset.id)")]
    assert shown == [line["id"] for line in served.api("GET", f"/runs/{run_id}/logs").json()["lines"]]
    streams = [url for url in watch.requests if f"/ui/runs/{run_id}/events" in url]
    assert len(streams) >= 2, streams  # the 12 s step outlived the first stream

    # the runs list filters without a full page load (htmx swaps the table and the URL)
    page.goto(served.url + "/ui/runs")
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Status").select_option("failed")
    page.wait_for_url(re.compile(r".*status=failed.*"))
    page.locator("#runs-table", has_text="No runs match").wait_for()
    page.get_by_label("Status").select_option("succeeded")
    page.locator("#runs-table", has_text=f"#{run_id}").wait_for()
    assert page.evaluate("window.__sameDocument") is True

    # schedule and unschedule from the pipelines page (the card is swapped in place)
    page.goto(served.url + "/ui/pipelines")
    page.get_by_label("cron schedule for ui-demo").fill("0 3 * * *")
    page.locator("#pipeline-ui-demo").get_by_role("button", name="Schedule").click()
    page.locator("#pipeline-ui-demo .schedule", has_text="0 3 * * *").wait_for()
    assert re.search(r"\d{4}-\d\d-\d\d 0\d:00:00Z", page.locator("#pipeline-ui-demo .next-fire").inner_text())
    assert served.api("GET", "/jobs").json()["jobs"][0]["cron"] == "0 3 * * *"
    page.locator("#pipeline-ui-demo").get_by_role("button", name="Unschedule").click()
    page.locator("#pipeline-ui-demo .schedule", has_text="not scheduled").wait_for()
    assert served.api("GET", "/jobs").json()["jobs"] == []

    # the theme toggle is kept across pages
    page.goto(served.url + "/ui")
    before = page.evaluate("document.documentElement.dataset.theme || ''")
    page.locator("#theme-toggle").click()
    chosen = page.evaluate("document.documentElement.dataset.theme")
    assert chosen in ("dark", "light") and chosen != before
    page.goto(served.url + "/ui/tools")
    assert page.evaluate("document.documentElement.dataset.theme") == chosen
    assert page.evaluate("localStorage.getItem('mao-theme')") == chosen
    watch.check()
    context.close()

    shoot(
        browser,
        served,
        artifacts,
        {
            "overview": "/ui",
            "pipelines": "/ui/pipelines",
            "pipeline": "/ui/pipelines/ui-demo",
            "runs": "/ui/runs",
            "run": f"/ui/runs/{run_id}",
            "datasets": "/ui/datasets",
            "dataset": "/ui/datasets/ui-data",
            "tools": "/ui/tools",
        },
    )
    assert len(list(artifacts.glob("*.png"))) >= 32


@pytest.fixture
def locked(tmp_path: Path, docker_host: str) -> Iterator[Served]:
    server = Served(tmp_path / "data", docker_host, token=TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


def test_login_with_the_token_opens_the_dashboard(browser, locked, artifacts):
    context = browser.new_context(viewport=PHONE)
    watch = Watch(context, locked)
    page = context.new_page()
    page.goto(locked.url + "/ui/tools")
    assert "/ui/login" in page.url
    page.screenshot(path=str(artifacts / "login-phone-light.png"), full_page=True)
    page.get_by_label("API token").fill("wrong-token")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("not this instance's token").wait_for()
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(locked.url + "/ui/tools")
    assert TOKEN not in page.content()
    cookie = next(c for c in context.cookies() if c["name"] == "mao_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: out of the scripts' reach
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r".*/ui/login.*"))
    watch.check(expected=("401",))  # the wrong token's answer, and nothing else
    context.close()
