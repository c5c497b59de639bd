"""Fixtures of the dashboard's tests: an instance whose engine is a FakeExecutor, and a
TestClient that posts as the dashboard's own pages do (with this server's Origin)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from served_kit import Served as InThread
from ui_kit import CHROMIUM, ORIGIN, define

from mao.api.app import create_app
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds the fake tool ``img/gated`` running until set."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def reports() -> list[dict]:
    """What the fake tool ``img/metrics`` reports, one entry per step it runs (taken in order):
    ``{"metrics": {...}, "insight": ...}``."""
    return []


def fake_executor(gate: threading.Event, reports: list[dict]) -> FakeExecutor:
    """The fake tools: ``img/ok`` (logs two lines, writes a file), ``img/gated`` (logs, waits
    for ``gate``), ``img/metrics`` (writes a file, ``mao-metrics.json`` and ``insights.json``
    from the next of ``reports``) and ``img/fail`` (exits 3)."""

    def ok(spec, on_log) -> int:
        on_log(f"hello from {spec.step}")
        (spec.output_dir / "out.txt").write_text(f"run {spec.run_id}\n")
        on_log("wrote out.txt")
        return 0

    def gated(spec, on_log) -> int:
        on_log("waiting for the gate")
        gate.wait(30)
        return ok(spec, on_log)

    def measured(spec, on_log) -> int:
        report = reports.pop(0)
        (spec.output_dir / "out.txt").write_text(f"run {spec.run_id}\n")
        (spec.output_dir / "mao-metrics.json").write_text(json.dumps(report["metrics"]))
        if "insight" in report:
            (spec.output_dir / "insights.json").write_text(json.dumps(report["insight"]))
        return 0

    def failing(spec, on_log) -> int:
        on_log("something went wrong")
        return 3

    return FakeExecutor({"img/ok": ok, "img/gated": gated, "img/metrics": measured, "img/fail": failing})


@pytest.fixture
def make_ui(data_dir, gate, reports):
    """``make_ui(**settings)``: a started TestClient of an instance with the fake tools of
    :func:`fake_executor`."""
    opened: list[tuple[TestClient, Instance]] = []

    def make(**overrides) -> TestClient:
        settings = Settings(**{"instance_name": "ui-node", "data_dir": data_dir, **overrides})
        instance = Instance(settings, executor=fake_executor(gate, reports))
        client = TestClient(create_app(instance=instance, background=False), headers={"Origin": ORIGIN})
        client.__enter__()
        opened.append((client, instance))
        return client

    yield make
    gate.set()
    for client, instance in reversed(opened):
        client.__exit__(None, None, None)
        instance.close()


@pytest.fixture
def served_fake(data_dir, gate, reports) -> Iterator[InThread]:
    """The API and dashboard of an instance with the fake tools, served by uvicorn in a
    thread on a free loopback port (for the browser, without a container engine)."""
    settings = Settings(instance_name="ui-node", data_dir=data_dir)
    instance = Instance(settings, executor=fake_executor(gate, reports))
    server = InThread.api(instance=instance, port=0).start()
    try:
        yield server
    finally:
        gate.set()
        server.stop()
        instance.close()


@pytest.fixture
def ui(make_ui) -> TestClient:
    """The dashboard of an open instance (loopback, no token), with pipelines ``demo``
    (tool img/ok) and ``slow`` (img/gated), each writing its own local dataset."""
    client = make_ui()
    define(client)
    return client


# ---------------------------------------------------------------------------- browser tests


def _required() -> bool:
    return os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium; the tests skip (fail with MAO_TEST_REQUIRE_SERVICES=1) without it or Playwright."""
    reason = None
    if not Path(CHROMIUM).is_file():
        reason = f"{CHROMIUM} is missing (scripts/services.sh up installs Debian's chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install -e '.[test]')"
    if reason:
        if _required():
            pytest.fail(f"{reason} (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def docker_host() -> str:
    url = os.environ.get("MAO_TEST_DOCKER_HOST")
    if not url:
        if _required():
            pytest.fail("MAO_TEST_DOCKER_HOST is not set (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip("MAO_TEST_DOCKER_HOST is not set")
    return url


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go and stay: ``$MAO_RUN_DIR/artifacts/ui`` (a temporary directory if unset)."""
    run_dir = os.environ.get("MAO_RUN_DIR")
    path = Path(run_dir) / "artifacts" / "ui" if run_dir else tmp_path_factory.mktemp("artifacts-ui")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
