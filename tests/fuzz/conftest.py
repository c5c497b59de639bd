"""An in-process instance for the fuzz suite: SQLite store and local registry in a temporary
data directory, a FakeExecutor as container engine (no container ever starts), no scheduler thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from fuzz_budget import ANSWERS, max_examples

from mao.api.app import create_app
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance

MAX_EXAMPLES = max_examples()
"""Examples per operation (valid and invalid data): with 40, about 1,000 requests, two to three
minutes on 2 cores; ``MAO_FUZZ_REQUESTS=3000`` (or ``MAO_FUZZ_EXAMPLES=115``) about 3,000."""

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
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MAO_ALLOWED_HOSTS", "testserver")  # the name the in-process clients send as Host
        settings = Settings(instance_name="fuzz-node", data_dir=data_dir)
    instance = Instance(settings, executor=FakeExecutor({"img/ok": _ok}))
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


def _summary() -> str | None:
    if not ANSWERS:
        return None
    by_class = ", ".join(f"{n} {kind}" for kind, n in sorted(ANSWERS.items()))
    return f"fuzz: {sum(ANSWERS.values())} generated requests ({MAX_EXAMPLES} examples per operation): {by_class}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if line := _summary():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker, the summary goes to the controller (tests/conftest.py prints it)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None and (line := _summary()):
        workeroutput.setdefault("summary_lines", []).append(line)


@pytest.fixture(scope="session")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=schemathesis.Config.from_dict(CONFIG))
