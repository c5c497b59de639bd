"""``/docs`` in a real browser (Debian's Chromium, Playwright): Swagger UI 5 renders the
OpenAPI 3.1 document, "Try it out" → "Execute" answers, no request leaves the machine, the
strict CSP holds (a blocked inline script or style would be a console error)."""

from __future__ import annotations

import json

import pytest
from ui_kit import DESKTOP, PHONE, Watch, shoot

pytestmark = pytest.mark.browser


def test_the_api_browser_renders_and_executes_a_request_offline(browser, served_fake, artifacts):
    context = browser.new_context(viewport=DESKTOP)
    watch = Watch(context, served_fake)
    page = context.new_page()
    page.goto(served_fake.url + "/docs")
    health = page.locator("#operations-health-health_health_get")
    health.wait_for(timeout=30_000)
    assert "/health" in health.inner_text()
    assert page.locator(".opblock").count() >= 30  # every operation of the document
    assert page.locator("text=Unable to render this definition").count() == 0
    assert page.locator(".version-stamp", has_text="OAS 3.1").count() == 1
    paths = json.loads(page.evaluate("fetch('/openapi.json').then(r => r.text())"))["paths"]
    operations = sum(1 for item in paths.values() for method in item if method in ("get", "post", "put", "delete"))
    assert page.locator(".opblock").count() == operations

    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    live = health.locator(".live-responses-table tr.response .response-col_status")
    live.first.wait_for(timeout=15_000)
    assert live.first.inner_text().strip() == "200"
    body = health.locator(".live-responses-table tr.response .response-col_description pre").first.inner_text()
    assert json.loads(body)["ok"] is True
    health.screenshot(path=str(artifacts / "docs-try-it-out-desktop-light.png"))

    # the same with a path parameter: GET /pipeline/{name} of a pipeline that does not exist is the 404 body
    one = page.locator("#operations-pipelines-get_pipeline_pipeline__name__get")
    one.locator(".opblock-summary").click()
    one.get_by_role("button", name="Try it out").click()
    one.locator('input[placeholder="name"]').fill("nothing-here")
    one.get_by_role("button", name="Execute").click()
    status = one.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for(timeout=15_000)
    assert status.inner_text().strip() == "404"
    watch.check(expected=("404",))  # the 404 answered on purpose, and nothing else
    assert all(url.startswith(served_fake.url) for url in watch.requests), watch.requests
    context.close()

    # dark when the system is, or when the dashboard's toggle chose it (shared with /ui)
    context = browser.new_context(viewport=PHONE, color_scheme="light")
    page = context.new_page()
    page.goto(served_fake.url + "/docs")
    page.locator("#operations-health-health_health_get").wait_for(timeout=30_000)
    assert page.evaluate("document.documentElement.classList.contains('dark-mode')") is False
    page.locator("#theme-toggle").click()
    assert page.evaluate("document.documentElement.classList.contains('dark-mode')") is True
    page.goto(served_fake.url + "/ui")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    context.close()

    shoot(browser, served_fake, artifacts, {"docs": "/docs"}, ready={"docs": "#operations-health-health_health_get"})
    assert {p.name for p in artifacts.glob("docs-*.png")} >= {
        f"docs-{size}-{scheme}.png" for size in ("desktop", "phone") for scheme in ("light", "dark")
    }
