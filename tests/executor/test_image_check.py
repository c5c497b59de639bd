"""Checking a tool's image on the engine: present, absent and not pullable (no registry is
reachable from the tests), a pull that takes too long, an engine that cannot be reached."""

from __future__ import annotations

import threading
import time

import pytest

from mao.errors import ExecutorError
from mao.executor.docker import DockerExecutor


def test_an_image_on_the_engine_has_no_problem(executor: DockerExecutor, step_image: str) -> None:
    assert executor.image_problem(step_image) is None


def test_an_absent_image_that_cannot_be_pulled_is_named(executor: DockerExecutor) -> None:
    started = time.monotonic()
    problem = executor.image_problem("mao-test/never-built:0.0.1", timeout=30)
    assert problem is not None
    assert "'mao-test/never-built:0.0.1' is not on the container engine" in problem
    assert "could not be pulled" in problem
    assert time.monotonic() - started < 30


def test_a_check_that_takes_too_long_ends_at_the_timeout(executor: DockerExecutor, monkeypatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(executor, "_find_or_pull", lambda image, stop: release.wait(30) and None)
    try:
        problem = executor.image_problem("mao-test/slow:1", timeout=0.2)
    finally:
        release.set()
    assert problem is not None and "did not finish within 0.2 s" in problem


def test_an_engine_that_cannot_be_reached_is_an_executor_error(executor: DockerExecutor, monkeypatch) -> None:
    import requests

    def unreachable(image: str, stop: threading.Event) -> None:
        raise requests.ConnectionError("connection refused")

    monkeypatch.setattr(executor, "_find_or_pull", unreachable)
    with pytest.raises(ExecutorError):
        executor.image_problem("mao-test/any:1")
