"""An in-process instance for the fuzz suite: SQLite store and local registry in a temporary
data directory, a FakeExecutor as container engine (no container ever starts), no scheduler thread."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient

from mao.api.app import create_app
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance

MAX_EXAMPLES = int(os.environ.get("MAO_FUZZ_EXAMPLES", "40"))
"""Examples per operation (valid and invalid data): with 40, about 1,000 requests over the 28
operations, two to three minutes on 2 cores."""

CONFIG = {
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
    "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False}, "stateful": {"enabled": False}},
}


def _ok(spec, on_log) -> int:
    (spec.output_dir / "out.txt").write_text(f"run {spec.run_id}\n")
    on_log("wrote out.txt")
    return 0


@pytest.fixture(scope="session")
def fuzz_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz-data")
    instance = Instance(Settings(instance_name="fuzz-node", data_dir=data_dir), executor=FakeExecutor({"img/ok": _ok}))
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def fuzz_app(fuzz_instance: Instance):
    app = create_app(instance=fuzz_instance, background=False)
    # known resources, so that some cases hit existing names
    with TestClient(app) as client:
        master = client.post("/bare-repo/init", json={"name": "hub-data", "register": True}).json()["path"]
        assert master
        client.post("/registry/tools", json={"name": "collector", "image": "img/ok"}).raise_for_status()
        client.post("/pipeline/init", json={"tool": "collector", "dataset": "hub-data"}).raise_for_status()
    return app


@pytest.fixture(scope="session")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=schemathesis.Config.from_dict(CONFIG))
