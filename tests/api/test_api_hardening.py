"""Input hardening: crons that cannot run, size limits, resources in use, pipeline definitions
that would collide; each refused with a 4xx that writes nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mao.errors import RegistryUnavailable
from mao.models import MAX_CMD, MAX_CMD_ITEMS, MAX_DESCRIPTION, MAX_ENV_ENTRIES, MAX_ENV_VALUE, MAX_STEPS
from mao.web.limits import MAX_BODY_BYTES

MASTER = "https://github.com/mao-mao-research/hub-data.git"


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    assert client.post("/registry/tools", json={"name": "collector", "image": "mao/collector:1"}).status_code == 200
    for name in ("hub-data", "other-data"):
        body = {"name": name, "body": {"master": MASTER, "nodes": []}}
        assert client.post("/registry/datasets", json=body).status_code == 200
    assert client.post("/pipeline/init", json={"tool": "collector", "dataset": "hub-data"}).status_code == 200
    return client


def state(client: TestClient) -> tuple:
    instance = client.app.state.instance
    return (
        client.get("/registry/tools").json(),
        client.get("/registry/datasets").json(),
        client.get("/registry/pipelines").json(),
        client.get("/pipeline").json(),
        client.get("/jobs").json(),
        client.get("/runs").json(),
        {p.name: instance.store.private_variables(p.name) for p in instance.store.list_pipelines()},
    )


# ------------------------------------------------------------------------ cron


@pytest.mark.parametrize("cron", ["", "   ", "0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *"])
def test_empty_or_never_firing_cron_is_a_400_and_neither_runs_nor_schedules(assert_error_shape, seeded, cron) -> None:
    before = state(seeded)
    response = seeded.post("/pipeline/run", json={"name": "collector-hub-data", "cron": cron})
    error = assert_error_shape(response, 400)
    assert ("never fires" if cron.strip() else "empty cron") in error["message"]
    assert state(seeded) == before


def test_a_rare_but_real_cron_is_scheduled(seeded) -> None:
    response = seeded.post("/pipeline/run", json={"name": "collector-hub-data", "cron": "0 0 29 2 *"})
    assert response.status_code == 200, response.text
    assert response.json()["job"]["next_run_time"].startswith("2028-02-29")


# ------------------------------------------------------------------------ size limits


def _step(**extra) -> dict:
    return {"name": "s", "tool": "collector", "output_dataset": "other-data", **extra}


OVER_LIMITS = {
    "env entries": {"name": "p", "steps": [_step(env={f"V{i}": "x" for i in range(MAX_ENV_ENTRIES + 1)})]},
    "env value": {"name": "p", "steps": [_step(env={"V": "x" * (MAX_ENV_VALUE + 1)})]},
    "cmd string": {"name": "p", "steps": [_step(cmd="x" * (MAX_CMD + 1))]},
    "cmd items": {"name": "p", "steps": [_step(cmd=["x"] * (MAX_CMD_ITEMS + 1))]},
    "cmd total": {"name": "p", "steps": [_step(cmd=["x" * 100] * (MAX_CMD // 100 + 1))]},
    "description": {"name": "p", "description": "x" * (MAX_DESCRIPTION + 1), "steps": [_step()]},
    "steps": {"name": "p", "steps": [_step(name=f"s{i}") for i in range(MAX_STEPS + 1)]},
    "private variable value": {
        "name": "p",
        "steps": [_step(env={"T": "{{ T }}"})],
        "private_variables": {"T": "x" * (MAX_ENV_VALUE + 1)},
    },
}


@pytest.mark.parametrize("what", sorted(OVER_LIMITS))
def test_pipeline_over_a_size_limit_is_a_400_and_stores_nothing(assert_error_shape, seeded, what) -> None:
    before = state(seeded)
    assert_error_shape(seeded.post("/pipeline/init", json=OVER_LIMITS[what]), 400)
    assert state(seeded) == before


def test_pipeline_at_the_size_limits_is_accepted(seeded) -> None:
    env = {f"V{i}": "x" * 50 for i in range(MAX_ENV_ENTRIES)}
    steps = [_step(name=f"s{i}", cmd=["x"] * MAX_CMD_ITEMS) for i in range(MAX_STEPS - 1)]
    steps.append(_step(name="last", env=env, cmd="x" * MAX_CMD))
    body = {"name": "p", "description": "x" * MAX_DESCRIPTION, "steps": steps}
    response = seeded.post("/pipeline/init", json=body)
    assert response.status_code == 200, response.text[:500]


def test_a_huge_env_is_refused_before_the_registry(assert_error_shape, seeded) -> None:
    """The outside finding: 10,000 variables, 10 MB, were stored in the pipeline and the registry."""
    before = state(seeded)
    env = {f"V{i}": "x" * 1000 for i in range(10_000)}
    response = seeded.post("/pipeline/init", json={"name": "huge", "steps": [_step(env=env)]})
    error = assert_error_shape(response, 413)
    assert error["code"] == "payload_too_large"
    assert state(seeded) == before


@pytest.mark.parametrize("path", ["/registry/tools", "/registry/datasets", "/pipeline/init", "/pipeline/run"])
def test_bodies_over_one_mebibyte_are_a_413_by_length_or_by_stream(assert_error_shape, seeded, path) -> None:
    before = state(seeded)
    big = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'"}'
    error = assert_error_shape(seeded.post(path, content=big, headers={"content-type": "application/json"}), 413)
    assert error["details"] == {"limit_bytes": MAX_BODY_BYTES}

    def chunks():  # no Content-Length: the limit applies as the body streams in
        for _ in range(20):
            yield b"x" * (MAX_BODY_BYTES // 10)

    assert_error_shape(seeded.post(path, content=chunks(), headers={"content-type": "application/json"}), 413)
    assert state(seeded) == before


def test_variable_value_over_the_limit_is_a_400(assert_error_shape, seeded) -> None:
    seeded.post("/pipeline/init", json={"name": "sec", "steps": [_step(env={"T": "{{ TOKEN }}"})]}).raise_for_status()
    before = state(seeded)
    body = {"name": "TOKEN", "value": "x" * (MAX_ENV_VALUE + 1)}
    assert_error_shape(seeded.put("/pipeline/sec/variables", json=body), 400)
    assert state(seeded) == before
    assert seeded.put("/pipeline/sec/variables", json={"name": "TOKEN", "value": "s3cret"}).status_code == 200


# ------------------------------------------------------------------------ in use by an active run


def _run_gated(fake_client: TestClient) -> int:
    instance = fake_client.app.state.instance
    path = fake_client.post("/bare-repo/init", json={"name": "out", "register": True}).json()["path"]
    assert path
    fake_client.post("/registry/tools", json={"name": "slow", "image": "img/gated"}).raise_for_status()
    fake_client.post("/pipeline/init", json={"tool": "slow", "dataset": "out"}).raise_for_status()
    run_id = fake_client.post("/pipeline/run", json={"name": "slow-out"}).json()["run_id"]
    assert instance.store.get_run(run_id).status in ("pending", "running")
    return run_id


@pytest.mark.parametrize("path", ["/registry/tools/slow", "/registry/datasets/out"])
def test_tool_or_dataset_used_by_an_active_run_cannot_be_removed(assert_error_shape, fake_client, gate, path) -> None:
    run_id = _run_gated(fake_client)
    before = state(fake_client)
    error = assert_error_shape(fake_client.delete(path), 409)
    assert f"run {run_id}" in error["message"] and "slow-out" in error["message"]
    assert error["details"] == {"runs": [run_id]}
    assert state(fake_client)[:5] == before[:5]  # the run itself moves on

    forced = assert_error_shape(fake_client.delete(path, params={"force": "true"}), 409)
    assert f"run {run_id}" in forced["message"]  # force never removes what a run is using

    gate.set()
    fake_client.app.state.instance.runner.wait(run_id, timeout=30)
    assert fake_client.get(f"/runs/{run_id}").json()["status"] == "succeeded"
    assert assert_error_shape(fake_client.delete(path), 409)["details"]["pipelines"] == ["slow-out"]
    assert fake_client.delete(path, params={"force": "true"}).status_code == 200


def test_unrelated_tools_can_be_removed_during_a_run(fake_client, gate) -> None:
    _run_gated(fake_client)
    fake_client.post("/registry/tools", json={"name": "idle", "image": "img/ok"}).raise_for_status()
    assert fake_client.delete("/registry/tools/idle").status_code == 200


# ------------------------------------------------------------------------ pipeline definitions


def test_a_step_sharing_another_pipelines_node_branch_is_a_409(assert_error_shape, seeded) -> None:
    before = state(seeded)
    # the seed's short form again under another name: step "collector" writing "hub-data" again
    response = seeded.post("/pipeline/init", json={"name": "again", "tool": "collector", "dataset": "hub-data"})
    error = assert_error_shape(response, 409)
    assert "collector-hub-data" in error["message"] and "rename the step" in error["message"]
    assert "collector-test-node" in error["message"]
    assert state(seeded) == before
    # the same step name on another dataset, or another step name on the same dataset, is fine
    ok = {"name": "again", "steps": [_step(name="collector", output_dataset="other-data")]}
    assert seeded.post("/pipeline/init", json=ok).status_code == 200
    ok = {"name": "third", "steps": [_step(name="collector2", output_dataset="hub-data")]}
    assert seeded.post("/pipeline/init", json=ok).status_code == 200


def test_a_different_federation_definition_of_the_same_name_is_a_409(assert_error_shape, seeded) -> None:
    catalog = seeded.app.state.instance.catalog
    catalog.register_pipeline({"name": "shared", "description": "theirs", "steps": [_step(name="a")]})
    before = state(seeded)
    mine = {"name": "shared", "description": "mine", "steps": [_step(name="a")]}
    error = assert_error_shape(seeded.post("/pipeline/init", json=mine), 409)
    assert "different pipeline named 'shared'" in error["message"]
    assert state(seeded) == before
    assert catalog.get_pipeline("shared")["description"] == "theirs"


def test_the_identical_federation_definition_is_accepted(seeded) -> None:
    """As when a second instance inits the federation's pipeline."""
    catalog = seeded.app.state.instance.catalog
    definition = {"name": "shared", "description": "theirs", "steps": [_step(name="a", timeout=60)]}
    catalog.register_pipeline(definition)
    response = seeded.post("/pipeline/init", json=definition)
    assert response.status_code == 200, response.text
    assert [p["name"] for p in seeded.get("/pipeline").json()] == ["collector-hub-data", "shared"]


def test_unregister_goes_first_and_a_registry_failure_keeps_the_local_pipeline(
    assert_error_shape, seeded, monkeypatch
) -> None:
    seeded.post("/pipeline/run", json={"name": "collector-hub-data", "cron": "0 * * * *"}).raise_for_status()
    registry = seeded.app.state.instance.registry
    real_delete = registry.delete

    def down(key: str) -> bool:
        if key.startswith("pipelines/"):
            raise RegistryUnavailable("registry is down for the test")
        return real_delete(key)

    monkeypatch.setattr(registry, "delete", down)
    before = state(seeded)
    assert_error_shape(seeded.delete("/pipeline/collector-hub-data?unregister=true"), 503)
    assert state(seeded) == before  # still defined, scheduled and registered

    monkeypatch.setattr(registry, "delete", real_delete)
    assert seeded.delete("/pipeline/collector-hub-data?unregister=true").status_code == 200
    assert seeded.get("/pipeline").json() == []
    assert seeded.get("/registry/pipelines").json() == {}
    assert seeded.get("/jobs").json()["jobs"] == []


@pytest.mark.parametrize("field,query", [("pipeline", "pipeline=" + "x" * 65), ("status", "status=" + "x" * 17)])
def test_run_filters_are_bounded(assert_error_shape, client, field, query) -> None:
    error = assert_error_shape(client.get(f"/runs?{query}"), 400)
    assert field in error["message"], error
    # a filter within the bounds is answered
    assert client.get("/runs?pipeline=x&status=failed").json() == {"runs": []}


# ------------------------------------------------------------------------ run and wait


def test_run_with_wait_answers_once_the_run_has_ended(fake_client) -> None:
    fake_client.post("/bare-repo/init", json={"name": "out", "register": True}).raise_for_status()
    fake_client.post("/registry/tools", json={"name": "quick", "image": "img/ok"}).raise_for_status()
    fake_client.post("/pipeline/init", json={"tool": "quick", "dataset": "out"}).raise_for_status()
    answer = fake_client.post("/pipeline/run", json={"name": "quick-out", "wait": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "succeeded"
    assert fake_client.get(f"/runs/{answer.json()['run_id']}").json()["steps"][0]["merge_commit"]
    # without wait, the answer comes at once, before the run ends
    started = fake_client.post("/pipeline/run", json={"name": "quick-out"}).json()
    assert started["status"] in ("pending", "running", "succeeded")
