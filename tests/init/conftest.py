"""A real orchestrator (served in a thread, SQLite store, local registry) and a private marketplace."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from initkit import write_catalogue
from served_kit import Served

from mao.api.app import create_app
from mao.config import Settings
from mao.instance import Instance


@dataclass
class Orchestrator:
    url: str
    app: FastAPI
    settings: Settings
    http: httpx.Client

    @property
    def instance(self) -> Instance:
        return self.app.state.instance

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def orchestrator(tmp_path: Path) -> Iterator[Orchestrator]:
    settings = Settings(instance_name="init-node", data_dir=tmp_path / "data")
    with (
        Served(create_app(settings, background=True), name="orchestrator") as served,
        httpx.Client(base_url=served.url, timeout=10) as http,
    ):
        yield Orchestrator(served.url, served.app, settings, http)


@pytest.fixture
def market(tmp_path: Path) -> Path:
    return write_catalogue(tmp_path / "market")
