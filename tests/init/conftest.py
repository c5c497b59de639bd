"""A real orchestrator (uvicorn in a thread, SQLite store, local registry) and a private marketplace."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from initkit import write_catalogue

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
def orchestrator(tmp_path: Path, free_port, wait_for) -> Iterator[Orchestrator]:
    settings = Settings(instance_name="init-node", data_dir=tmp_path / "data")
    app = create_app(settings, background=True)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="orchestrator", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), 30, message="the orchestrator to start")
    assert server.started, "the orchestrator did not start"
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=10) as http:
        try:
            yield Orchestrator(url, app, settings, http)
        finally:
            server.should_exit = True
            thread.join(30)


@pytest.fixture
def market(tmp_path: Path) -> Path:
    return write_catalogue(tmp_path / "market")
