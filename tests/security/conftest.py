"""Fixtures of the security tests: an instance whose engine is a FakeExecutor (``img/ok``
writes a file, ``img/gated`` waits for ``gate``), its API in-process with the settings a test
chooses, and the names, datasets and pipelines a browser attack would go for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mao.api.app import create_app
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance


@dataclass
class Api:
    client: TestClient
    instance: Instance
    executor: FakeExecutor

    def define(self, headers: dict[str, str] | None = None, pipeline_tool: str = "ok-tool") -> None:
        """Tools ``ok-tool`` and ``gated-tool``, the local dataset ``obs``, the pipeline ``demo``."""
        h = headers or {}
        for tool, image in (("ok-tool", "img/ok"), ("gated-tool", "img/gated")):
            self.client.post("/registry/tools", json={"name": tool, "image": image}, headers=h).raise_for_status()
        self.client.post("/bare-repo/init", json={"name": "obs", "register": True}, headers=h).raise_for_status()
        step = {"name": "collect", "tool": pipeline_tool, "output_dataset": "obs"}
        self.client.post("/pipeline/init", json={"name": "demo", "steps": [step]}, headers=h).raise_for_status()


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds the fake tool ``img/gated`` running until set."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def make_api(data_dir, gate) -> Iterator[Callable[..., Api]]:
    """``make_api(client=(host, port), **settings)``: a started in-process API; closed afterwards."""
    opened: list[Api] = []

    def ok(spec, on_log) -> int:
        (spec.output_dir / "out.txt").write_text(f"run {spec.run_id}\n")
        return 0

    def gated(spec, on_log) -> int:
        gate.wait(30)
        return ok(spec, on_log)

    def make(*, client: tuple[str, int] = ("testclient", 50000), **overrides: Any) -> Api:
        settings = Settings(**{"instance_name": "sec-node", "data_dir": data_dir, **overrides})
        executor = FakeExecutor({"img/ok": ok, "img/gated": gated})
        instance = Instance(settings, executor=executor)
        test_client = TestClient(create_app(instance=instance, background=False), client=client)
        test_client.__enter__()
        api = Api(test_client, instance, executor)
        opened.append(api)
        return api

    yield make
    gate.set()
    for api in reversed(opened):
        api.client.__exit__(None, None, None)
        api.instance.close()
