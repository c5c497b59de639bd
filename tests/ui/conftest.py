"""Fixtures of the dashboard's tests: an instance whose engine is a FakeExecutor, and a
TestClient that posts as the dashboard's own pages do (with this server's Origin)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from ui_kit import ORIGIN, define

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
def make_ui(data_dir, gate):
    """``make_ui(**settings)``: a started TestClient of an instance with the fake tools
    ``img/ok`` (logs two lines, writes a file) and ``img/gated`` (logs, waits for ``gate``)."""
    opened: list[tuple[TestClient, Instance]] = []

    def ok(spec, on_log) -> int:
        on_log(f"hello from {spec.step}")
        (spec.output_dir / "out.txt").write_text(f"run {spec.run_id}\n")
        on_log("wrote out.txt")
        return 0

    def gated(spec, on_log) -> int:
        on_log("waiting for the gate")
        gate.wait(30)
        return ok(spec, on_log)

    def make(**overrides) -> TestClient:
        settings = Settings(**{"instance_name": "ui-node", "data_dir": data_dir, **overrides})
        instance = Instance(settings, executor=FakeExecutor({"img/ok": ok, "img/gated": gated}))
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
def ui(make_ui) -> TestClient:
    """The dashboard of an open instance (loopback, no token), with pipelines ``demo``
    (tool img/ok) and ``slow`` (img/gated), each writing its own local dataset."""
    client = make_ui()
    define(client)
    return client
