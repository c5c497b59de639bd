"""The dashboard's pictures and quality views in a real browser (Debian's Chromium,
Playwright) against an instance served in this process with fake tools: the charts show the
API's data and follow the theme, a refused schedule keeps the card, and every page is kept
as a picture (desktop and 375 px, light and dark)."""

from __future__ import annotations

import re

import httpx
import pytest
from ui_kit import DESKTOP, PHONE, SUSPECT, Watch, populate, shoot

pytestmark = pytest.mark.browser


@pytest.fixture
def filled(served_fake, reports):
    with httpx.Client(base_url=served_fake.url, timeout=60) as client:
        ids = populate(client, reports)
        yield served_fake, client, ids


def test_the_charts_show_the_apis_data_and_follow_the_theme(browser, filled, artifacts):
    server, api, ids = filled
    context = browser.new_context(viewport=DESKTOP)
    watch = Watch(context, server)
    page = context.new_page()
    page.goto(server.url + "/ui/pipelines/measure")
    for metric in ("rows", "ratio"):
        values = api.get(f"/pipelines/measure/metrics?step=count&metric={metric}").json()
        chart = page.locator(f"#metric-count-{metric} svg")
        assert chart.locator(".pt").count() == len(values)
        drawn = chart.locator(".pt").evaluate_all(
            "ps => ps.map(p => [Number(p.dataset.run), Number(p.dataset.value), p.dataset.suspect === 'true'])"
        )
        assert drawn == [[v["run_id"], v["value"], v["suspect"]] for v in values]
        box = chart.bounding_box()
        assert box and box["width"] > 400 and box["height"] > 100  # drawn, at a readable size
        assert chart.get_attribute("role") == "img" and chart.locator("desc").count() == 1
    suspects = page.locator("#metrics .pt.suspect")
    assert suspects.count() == len(SUSPECT)
    plain = page.locator("#metric-count-rows .pt.s0").first
    red = page.evaluate("e => getComputedStyle(e).fill", suspects.first.element_handle())
    assert red != page.evaluate("e => getComputedStyle(e).fill", plain.element_handle())
    light_fill = page.evaluate("e => getComputedStyle(e).fill", plain.element_handle())
    # a point is a link to its run
    target = int(suspects.first.get_attribute("data-run"))
    assert target in [ids["measure"][n] for n in SUSPECT]
    suspects.first.click()
    page.wait_for_url(re.compile(rf".*/ui/runs/{target}$"))
    assert page.locator("#run-status").inner_text() == "suspect"
    assert page.locator('tr[data-step="count"] .step-status').inner_text() == "suspect"
    assert "from this run" not in page.locator("#insights").inner_text()
    # the theme: the same chart in the dark theme has other colours
    page.goto(server.url + "/ui/pipelines/measure")
    page.locator("#theme-toggle").click()
    dark_fill = page.evaluate(
        "e => getComputedStyle(e).fill", page.locator("#metric-count-rows .pt.s0").first.element_handle()
    )
    assert dark_fill != light_fill
    page.locator("#theme-toggle").click()
    # the heat map and the history graph
    grid = api.get("/federation/coverage?pipeline=measure").json()
    cells = page.locator("#coverage-measure .cell")
    assert cells.count() == len(grid["slots"]) * len(grid["instances"])
    page.goto(server.url + "/ui/datasets/agreed")
    assert page.locator("#history-agreed .commit[data-kind='tally']").count() == 1
    page.goto(server.url + "/ui/runs")
    runs = api.get("/runs?limit=100").json()["runs"]
    assert page.locator("#durations-runs .pt").count() == len([r for r in runs if r["duration"] is not None])
    # the table fallback opens
    page.locator("#durations-runs summary").click()
    assert page.locator("#durations-runs details table tbody tr").count() == len(runs)
    watch.check()
    context.close()


def test_a_bad_cron_keeps_the_card_its_controls_and_the_typed_value(browser, filled):
    server, api, _ = filled
    context = browser.new_context(viewport=PHONE)
    watch = Watch(context, server)
    page = context.new_page()
    page.goto(server.url + "/ui/pipelines")
    page.evaluate("window.__sameDocument = true")
    card = page.locator("#pipeline-demo")
    card.get_by_label("cron schedule for demo").fill("61 * * * *")
    card.get_by_role("button", name="Schedule").click()
    error = page.locator("#pipeline-demo .schedule-error")
    error.wait_for()
    assert "61" in error.inner_text() or "minute" in error.inner_text()
    assert page.locator("#pipeline-demo").count() == 1  # the card, not a line in its place
    assert card.get_by_role("button", name="Run now").is_visible()
    assert card.get_by_role("button", name="Schedule").is_visible()
    assert card.get_by_label("cron schedule for demo").input_value() == "61 * * * *"
    assert card.get_by_label("cron schedule for demo").get_attribute("aria-invalid") == "true"
    assert page.locator("#pipeline-slow .schedule-error").count() == 0
    assert api.get("/jobs").json()["jobs"] == [j for j in api.get("/jobs").json()["jobs"] if j["pipeline"] != "demo"]
    # corrected in the same form, it schedules
    card.get_by_label("cron schedule for demo").fill("0 4 * * *")
    card.get_by_role("button", name="Schedule").click()
    page.locator("#pipeline-demo .schedule", has_text="0 4 * * *").wait_for()
    assert page.locator("#pipeline-demo .schedule-error").count() == 0
    assert page.evaluate("window.__sameDocument") is True
    assert [j["cron"] for j in api.get("/jobs").json()["jobs"] if j["pipeline"] == "demo"] == ["0 4 * * *"]
    watch.check(expected=("400",))  # the refused schedule's answer, and nothing else
    context.close()


def test_every_page_with_its_pictures_is_kept_as_a_screenshot(browser, filled, artifacts):
    server, _, ids = filled
    pages = {
        "overview-quality": "/ui",
        "pipelines-quality": "/ui/pipelines",
        "pipeline-charts": "/ui/pipelines/measure",
        "runs-durations": "/ui/runs",
        "run-suspect": f"/ui/runs/{ids['measure'][3]}",
        "datasets-last-commit": "/ui/datasets",
        "dataset-graph": "/ui/datasets/observations",
        "dataset-tally": "/ui/datasets/agreed",
    }
    shoot(browser, server, artifacts, pages)
    for name in pages:
        for size in ("desktop", "phone"):
            for scheme in ("light", "dark"):
                assert (artifacts / f"{name}-{size}-{scheme}.png").stat().st_size > 10_000
