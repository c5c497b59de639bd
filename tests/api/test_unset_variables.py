"""A pipeline whose private variable is not set here is refused with a 400 naming it and the
command that sets it, run now or scheduled; nothing is recorded or scheduled."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from mao.store.models import PrivateVariable

COMMAND = "maoctl pipeline set-variable --name keyed --variable TOKEN"


@pytest.fixture
def keyed(fake_client: TestClient) -> TestClient:
    path = fake_client.post("/bare-repo/init", json={"name": "out", "register": True}).json()["path"]
    assert path
    fake_client.post("/registry/tools", json={"name": "t", "image": "img/ok"}).raise_for_status()
    step = {"name": "s", "tool": "t", "output_dataset": "out", "env": {"T": "{{ TOKEN }}", "P": "plain"}}
    fake_client.post("/pipeline/init", json={"name": "keyed", "steps": [step]}).raise_for_status()
    return fake_client


@pytest.mark.parametrize("extra", [{}, {"wait": True}, {"slot": "2026-11-28T12:00:00Z"}, {"cron": "0 * * * *"}])
def test_an_unset_private_variable_is_a_400_naming_it(assert_error_shape, keyed: TestClient, extra) -> None:
    error = assert_error_shape(keyed.post("/pipeline/run", json={"name": "keyed", **extra}), 400)
    assert "TOKEN" in error["message"] and COMMAND in error["message"]
    assert error["details"] == {"variables": ["TOKEN"]}
    assert keyed.get("/runs").json()["runs"] == []
    assert keyed.get("/jobs").json()["jobs"] == []


def test_once_set_it_runs_and_schedules(keyed: TestClient) -> None:
    keyed.put("/pipeline/keyed/variables", json={"name": "TOKEN", "value": "s3cret"}).raise_for_status()
    ran = keyed.post("/pipeline/run", json={"name": "keyed", "wait": True})
    assert ran.status_code == 200, ran.text
    assert ran.json()["status"] == "succeeded"
    assert keyed.post("/pipeline/run", json={"name": "keyed", "cron": "0 * * * *"}).status_code == 200


def test_a_variable_gone_after_scheduling_fails_the_run_with_the_same_words(keyed: TestClient) -> None:
    instance = keyed.app.state.instance
    keyed.put("/pipeline/keyed/variables", json={"name": "TOKEN", "value": "s3cret"}).raise_for_status()
    assert keyed.post("/pipeline/run", json={"name": "keyed", "cron": "0 * * * *"}).status_code == 200
    with instance.store.session() as s:
        s.execute(delete(PrivateVariable))
    run_id = instance.runner.run_sync("keyed", trigger="cron")  # what the schedule's fire does
    run = keyed.get(f"/runs/{run_id}").json()
    assert run["status"] == "failed"
    assert COMMAND in run["error"] and "TOKEN" in run["error"]


def test_an_undefined_pipeline_is_still_a_404(assert_error_shape, keyed: TestClient) -> None:
    # the variables check does not turn an unknown pipeline into a 400 about variables
    error = assert_error_shape(keyed.post("/pipeline/run", json={"name": "nope"}), 404)
    assert "nope" in error["message"] and "variable" not in error["message"]
    assert keyed.get("/runs").json()["runs"] == []  # nothing recorded
