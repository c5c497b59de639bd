from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mao.api.app import create_app
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance


@pytest.fixture
def make_client(data_dir) -> Iterator[Callable[..., TestClient]]:
    """Build a started TestClient (lifespan run) from settings overrides; closed afterwards."""
    opened: list[TestClient] = []

    def make(raise_server_exceptions: bool = True, **overrides) -> TestClient:
        settings = Settings(**{"instance_name": "test-node", "data_dir": data_dir, **overrides})
        client = TestClient(create_app(settings, background=False), raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    """The API of a standalone instance: local registry in SQLite under a temp data dir."""
    return make_client()


def assert_error_shape(response, status: int | None = None) -> dict[str, Any]:
    """The locked shape: {"ok": false, "error": {"code": str, "message": str[, "details": {...}]}}."""
    assert response.status_code >= 400, response.text
    if status is not None:
        assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["ok"] is False
    error = body["error"]
    assert isinstance(error, dict)
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "details"}
    if "details" in error:
        assert isinstance(error["details"], dict)
    assert "Traceback" not in response.text
    return error


@pytest.fixture(name="assert_error_shape")
def assert_error_shape_fixture():
    return assert_error_shape


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds the fake tool ``img/gated`` running until set."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def fake_client(data_dir, gate) -> Iterator[TestClient]:
    """The API of an instance whose container engine is a FakeExecutor: ``img/ok`` writes a file,
    ``img/gated`` waits for ``gate``. Local bare repositories serve as remotes."""

    def ok(spec, on_log) -> int:
        (spec.output_dir / "out.txt").write_text(f"run {spec.run_id}\n")
        return 0

    def gated(spec, on_log) -> int:
        gate.wait(30)
        return ok(spec, on_log)

    settings = Settings(instance_name="test-node", data_dir=data_dir)
    instance = Instance(settings, executor=FakeExecutor({"img/ok": ok, "img/gated": gated}))
    with TestClient(create_app(instance=instance, background=False)) as client:
        yield client
    instance.close()
