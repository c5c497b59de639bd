"""Removing a tool or dataset that pipelines use: a 409 naming them, unless forced; a run or a
pipeline definition starting at the same moment is either seen by the removal or waits for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mao.errors import Conflict
from mao.instance import Instance
from mao.models import PipelineIn

MASTER = "https://github.com/mao-mao-research/hub-data.git"


def _instance(client: TestClient) -> Instance:
    return client.app.state.instance


def _register(client: TestClient, tool: str = "demo-tool", image: str = "img/ok") -> None:
    client.post("/registry/tools", json={"name": tool, "image": image}).raise_for_status()
    for name in ("in-data", "out-data"):
        body = {"name": name, "body": {"master": MASTER, "nodes": []}}
        client.post("/registry/datasets", json=body).raise_for_status()


def _step(name: str, tool: str = "demo-tool", **extra: Any) -> dict[str, Any]:
    return {"name": name, "tool": tool, "output_dataset": "out-data", **extra}


@pytest.fixture
def used(client: TestClient) -> TestClient:
    """``demo-tool`` used by four pipelines, ``hourly`` scheduled every hour; ``in-data`` read by one."""
    _register(client)
    for n, pipeline in enumerate(("hourly", "daily", "adhoc", "reads")):
        extra = {"input_dataset": "in-data"} if pipeline == "reads" else {}
        body = {"name": pipeline, "steps": [_step(f"s{n}", **extra)]}
        client.post("/pipeline/init", json=body).raise_for_status()
    client.post("/pipeline/run", json={"name": "hourly", "cron": "0 * * * *"}).raise_for_status()
    return client


def _still_there(client: TestClient, kind: str, name: str) -> None:
    """The registry entry and this instance's last-known copy of it are both kept."""
    instance = _instance(client)
    assert client.get(f"/registry/{kind}s/{name}").status_code == 200
    assert instance.registry.get(f"{kind}s/{name}") is not None
    assert instance.catalog.cache is not None and instance.catalog.cache.get(kind, name) is not None


def test_a_tool_that_pipelines_use_is_a_409_naming_them(assert_error_shape, used: TestClient) -> None:
    error = assert_error_shape(used.delete("/registry/tools/demo-tool"), 409)
    assert error["details"] == {"pipelines": ["adhoc", "daily", "hourly", "reads"], "scheduled": ["hourly"]}
    for pipeline in ("'adhoc'", "'daily'", "'hourly' (scheduled)", "'reads'"):
        assert pipeline in error["message"]
    assert "--force" in error["message"] and "?force=true" in error["message"]
    _still_there(used, "tool", "demo-tool")


def test_a_dataset_read_or_written_by_pipelines_is_a_409(assert_error_shape, used: TestClient) -> None:
    error = assert_error_shape(used.delete("/registry/datasets/in-data"), 409)
    assert error["details"]["pipelines"] == ["reads"]
    _still_there(used, "dataset", "in-data")
    written = assert_error_shape(used.delete("/registry/datasets/out-data"), 409)
    assert written["details"]["pipelines"] == ["adhoc", "daily", "hourly", "reads"]
    _still_there(used, "dataset", "out-data")


def test_force_removes_it_anyway(used: TestClient) -> None:
    instance = _instance(used)
    response = used.delete("/registry/tools/demo-tool", params={"force": "true"})
    assert response.status_code == 200, response.text
    assert used.get("/registry/tools/demo-tool").status_code == 404
    assert instance.catalog.cache is not None and instance.catalog.cache.get("tool", "demo-tool") is None
    assert used.delete("/registry/datasets/in-data", params={"force": True}).status_code == 200
    assert instance.registry.get("datasets/in-data") is None
    assert [p["name"] for p in used.get("/pipeline").json()] == ["adhoc", "daily", "hourly", "reads"]


def test_a_pipeline_registered_by_another_instance_counts_too(assert_error_shape, client: TestClient) -> None:
    _register(client)
    definition = {"name": "elsewhere", "description": "", "steps": [_step("s", docker_socket=False, env={})]}
    _instance(client).catalog.register_pipeline(definition)
    error = assert_error_shape(client.delete("/registry/tools/demo-tool"), 409)
    assert error["details"]["pipelines"] == ["elsewhere"]
    _still_there(client, "tool", "demo-tool")


def test_an_unused_tool_is_removed_without_force(client: TestClient) -> None:
    _register(client)
    client.post("/registry/tools", json={"name": "spare", "image": "img/ok"}).raise_for_status()
    client.post("/pipeline/init", json={"name": "p", "steps": [_step("s")]}).raise_for_status()
    assert client.delete("/registry/tools/spare").status_code == 200


# ------------------------------------------------------------------------ at the same moment


class WatchedLock:
    """The catalog's lock, telling when a thread starts waiting for it."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.waiting = threading.Event()

    def __enter__(self) -> WatchedLock:
        self.waiting.set()
        self.lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def _held(instance: Instance, target: Any, method: str) -> tuple[threading.Event, threading.Event]:
    """Make ``target.method`` signal when it is entered and wait until released."""
    entered, release = threading.Event(), threading.Event()
    original: Callable[..., Any] = getattr(target, method)

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(30)
        return original(*args, **kwargs)

    setattr(target, method, held)
    return entered, release


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_forced_removal_while_a_run_is_being_recorded_sees_the_run(fake_client: TestClient) -> None:
    instance = _instance(fake_client)
    path = fake_client.post("/bare-repo/init", json={"name": "out", "register": True}).json()["path"]
    assert path
    fake_client.post("/registry/tools", json={"name": "t", "image": "img/ok"}).raise_for_status()
    fake_client.post("/pipeline/init", json={"tool": "t", "dataset": "out"}).raise_for_status()

    entered, release = _held(instance, instance.store, "create_runs")
    starter, started = _in_thread(lambda: instance.runner.start("t-out"))
    assert entered.wait(10)  # the run is being recorded, not committed yet
    watched = WatchedLock(instance.catalog.in_use_lock)
    instance.catalog.in_use_lock = watched
    remover, removed = _in_thread(lambda: instance.pipelines.remove_definition("tool", "t", force=True))
    assert watched.waiting.wait(10)  # the removal waits for the recording to end
    release.set()
    starter.join(10)
    remover.join(10)

    run_id = started["value"]
    assert isinstance(removed.get("error"), Conflict), removed
    assert f"run {run_id}" in removed["error"].message
    assert instance.registry.get("tools/t") is not None
    instance.runner.wait(run_id, timeout=30)
    assert fake_client.get(f"/runs/{run_id}").json()["status"] == "succeeded"


def test_a_removal_while_a_pipeline_is_being_defined_sees_the_pipeline(client: TestClient) -> None:
    instance = _instance(client)
    _register(client)
    entered, release = _held(instance, instance.store, "add_pipeline")
    pipeline = PipelineIn.model_validate({"name": "late", "steps": [_step("s")]})
    definer, defined = _in_thread(lambda: instance.pipelines.init(pipeline))
    assert entered.wait(10)  # its tools were found; it is being stored
    watched = WatchedLock(instance.catalog.in_use_lock)
    instance.catalog.in_use_lock = watched
    remover, removed = _in_thread(lambda: instance.pipelines.remove_definition("tool", "demo-tool"))
    assert watched.waiting.wait(10)
    release.set()
    definer.join(10)
    remover.join(10)

    assert defined["value"]["name"] == "late"
    assert isinstance(removed.get("error"), Conflict), removed
    assert removed["error"].details["pipelines"] == ["late"]
    assert instance.registry.get("tools/demo-tool") is not None
