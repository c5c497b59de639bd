"""Every key an answer carries is declared in its OpenAPI schema (statuses as the enums they
are), so a client generated from the document sees all of it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from mao.agreement.tally import vote_deadline
from mao.models import DatasetBody
from mao.registry.keys import dataset_key

SLOT = "2026-11-28T12:00:00Z"
OPEN_BY_DESIGN = {"ToolDoc", "StepDoc", "PipelineDoc"}
"""Registry documents another version may have written: their unknown keys pass through."""


def _resolve(document: dict, schema: dict) -> tuple[str | None, dict]:
    name = None
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    return name, schema


def undeclared(document: dict, schema: dict, value: Any, where: str = "") -> list[str]:
    """Paths of the keys of ``value`` its schema does not declare."""
    name, schema = _resolve(document, schema)
    if name in OPEN_BY_DESIGN:
        return []
    for option in schema.get("anyOf", []):
        _, resolved = _resolve(document, option)
        kind = resolved.get("type")
        if (kind == "object" and isinstance(value, dict)) or (kind == "array" and isinstance(value, list)):
            return undeclared(document, option, value, where)
    found: list[str] = []
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += undeclared(document, schema["items"], item, f"{where}[{i}]")
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{name}{where}.{key}")
            else:
                found += undeclared(document, schema["properties"][key], item, f"{where}.{key}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            found += undeclared(document, schema["additionalProperties"], item, f"{where}[{key}]")
    return found


def _check(client: TestClient, document: dict, method: str, url: str, **kwargs: Any) -> dict:
    response = client.request(method, url, **kwargs)
    assert response.status_code in (200, 201), response.text
    template = next(
        path
        for path in document["paths"]
        if len(path.split("/")) == len(url.split("?")[0].split("/"))
        and all(a == b or a.startswith("{") for a, b in zip(path.split("/"), url.split("?")[0].split("/"), strict=True))
        and method.lower() in document["paths"][path]
    )
    operation = document["paths"][template][method.lower()]
    content = next(r for code, r in operation["responses"].items() if code in ("200", "201"))["content"]
    schema = content["application/json"]["schema"]
    assert undeclared(document, schema, response.json()) == [], (method, url)
    return response.json()


def test_answers_declare_every_key_they_carry(fake_client: TestClient) -> None:
    client = fake_client
    document = client.get("/openapi.json").json()
    path = client.post("/bare-repo/init", json={"name": "out", "register": False}).json()["path"]
    check = lambda method, url, **kw: _check(client, document, method, url, **kw)  # noqa: E731
    check("POST", "/registry/tools", json={"name": "t", "image": "img/ok"})
    body = {"master": path, "records_path": "recs/{token}.jsonl", "record_schema": {"type": "object"}}
    check("POST", "/registry/datasets", json={"name": "out", "body": body})
    check("GET", "/registry/datasets")
    check("GET", "/registry/datasets/out")
    check("POST", "/pipeline/init", json={"name": "p", "steps": [{"name": "s", "tool": "t", "output_dataset": "out"}]})
    started = check("POST", "/pipeline/run", json={"name": "p", "wait": True, "slot": SLOT})
    assert (started["status"], started["slot"]) == ("succeeded", SLOT)
    check("POST", "/pipeline/run", json={"name": "p", "cron": "0 4 * * *"})
    run = check("GET", f"/runs/{started['run_id']}")
    assert run["slot"] == SLOT
    check("GET", "/runs")
    check("GET", f"/runs/{started['run_id']}/logs")
    check("GET", "/pipeline")
    check("GET", "/jobs")
    check("GET", "/federation/schedules")
    grid = check("GET", "/federation/coverage", params={"pipeline": "p", "since": "2026-11-28T11:00:00Z"})
    assert grid["schedules"] and grid["restored"] == 0


def test_a_step_whose_deferred_merge_conflicted_is_answered(fake_client: TestClient) -> None:
    """The replayer marks such a step's federation part ``conflict``: a state of FederationState."""
    client = fake_client
    path = client.post("/bare-repo/init", json={"name": "out", "register": True}).json()["path"]
    assert path
    client.post("/registry/tools", json={"name": "t", "image": "img/ok"}).raise_for_status()
    steps = [{"name": "s", "tool": "t", "output_dataset": "out"}]
    client.post("/pipeline/init", json={"name": "p", "steps": steps}).raise_for_status()
    run_id = client.post("/pipeline/run", json={"name": "p", "wait": True}).json()["run_id"]
    store = client.app.state.instance.store
    details = {"federation": "conflict", "conflict_files": ["a.csv"]}
    store.update_step(store.get_run(run_id).steps[0].id, details=details)
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    assert response.json()["steps"][0]["details"] == details
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "conflict" in schemas["FederationState"]["enum"]
    assert set(schemas["RunStatus"]["enum"]) >= {"pending", "running", "succeeded", "interrupted"}


def test_one_vote_deadline_default_from_the_dataset_model(fake_client: TestClient) -> None:
    """A dataset stored without ``vote_deadline`` (by an older version) is answered, and its
    slots tallied, with the default the dataset model declares."""
    instance = fake_client.app.state.instance
    instance.registry.put(dataset_key("old"), {"master": "https://example.org/old.git", "nodes": [], "policy": "vote"})
    default = DatasetBody(master="https://example.org/x.git").vote_deadline
    assert fake_client.get("/registry/datasets/old").json()["vote_deadline"] == default
    assert vote_deadline(instance.catalog.get_dataset("old")) == default
