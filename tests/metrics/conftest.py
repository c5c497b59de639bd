"""An in-process instance (fake container engine, real git remotes, local store on SQLite or
PostgreSQL) behind the API, and a scrape of its ``/metrics`` parsed with prometheus_client."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from metrics_kit import TOKEN, collect, fail

from mao.api.app import create_app
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, ToolIn


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
    return path


@pytest.fixture
def remotes(tmp_path: Path) -> dict[str, Path]:
    return {name: bare(tmp_path / "remotes" / f"{name}.git") for name in ("observations", "insights")}


@pytest.fixture
def make_instance(tmp_path: Path, store_url: str, remotes: dict[str, Path]) -> Iterator[Callable[..., Instance]]:
    """Instances on one data directory and store (a second call is the same instance restarted)."""
    built: list[Instance] = []

    def make(**overrides) -> Instance:
        settings = Settings(
            **{
                "instance_name": "node-m",
                "data_dir": tmp_path / "data",
                "store_url": store_url,
                "push_retries": 1,
                "api_token": TOKEN,
                **overrides,
            }
        )
        inst = Instance(settings, executor=FakeExecutor({"img/collect": collect, "img/fail": fail}))
        inst.setup()
        inst.datasets.retry_delay = 0.01
        if not built:
            inst.catalog.add_tool(ToolIn(name="collector", image="img/collect"))
            inst.catalog.add_tool(ToolIn(name="failer", image="img/fail"))
            for name, path in remotes.items():
                inst.catalog.add_dataset(DatasetIn(name=name, body=DatasetBody(master=str(path))))
        built.append(inst)
        return inst

    yield make
    for inst in built:
        inst.close()


@pytest.fixture
def instance(make_instance) -> Instance:
    return make_instance()


@pytest.fixture
def api(instance: Instance) -> Iterator[TestClient]:
    with TestClient(create_app(instance=instance, background=False)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client
