from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mao.api.app import create_app
from mao.config import Settings
from mao.instance import Instance

OPERATOR = "operator-token-0123456789"


class Gateway:
    """An API with an operator token, a bare-repository dataset ``obs`` and helpers."""

    def __init__(self, client: TestClient, instance: Instance, bare: Path) -> None:
        self.client = client
        self.instance = instance
        self.bare = bare
        self.operator = {"Authorization": f"Bearer {OPERATOR}"}

    def token(self, name: str, dataset: str = "obs", scope: str = "write", rate: str = "600/min") -> str:
        response = self.client.post(
            "/gateway/tokens",
            json={"name": name, "dataset": dataset, "scope": scope, "rate": rate},
            headers=self.operator,
        )
        assert response.status_code == 201, response.text
        return response.json()["secret"]

    def post(self, secret: str | None, record: Any = None, dataset: str = "obs", **kw: Any):
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        if record is not None:
            kw["json"] = record
        return self.client.post(f"/gateway/datasets/{dataset}/records", headers=headers, **kw)

    def dataset(self, name: str, **body: Any) -> Path:
        answer = self.client.post("/bare-repo/init", json={"name": name, "register": not body}, headers=self.operator)
        assert answer.status_code in (200, 201), answer.text
        path = Path(answer.json()["path"])
        if body:
            created = self.client.post(
                "/registry/datasets",
                json={"name": name, "body": {"master": str(path), "nodes": [], **body}},
                headers=self.operator,
            )
            assert created.status_code in (200, 201), created.text
        return path


@pytest.fixture
def gw(data_dir: Path) -> Iterator[Gateway]:
    settings = Settings(instance_name="gw-node", data_dir=data_dir, api_token=OPERATOR)
    instance = Instance(settings)
    with TestClient(create_app(instance=instance, background=False)) as client:
        gateway = Gateway(client, instance, Path())
        gateway.bare = gateway.dataset("obs")
        yield gateway
    instance.close()
