"""The OpenAPI document tells clients every status a route answers, its body, and the name rules."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from mao.validation import NAME_RE

# what the seed's curl examples and README use: these paths and methods must stay
SEED_OPERATIONS = [
    ("post", "/registry/datasets"),
    ("post", "/pipeline/init"),
    ("post", "/pipeline/run"),
    ("get", "/registry/tools"),
    ("post", "/registry/tools"),
    ("get", "/registry/datasets"),
]


@pytest.fixture
def document(client: TestClient) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_no_422_anywhere(document) -> None:
    text = json.dumps(document)
    assert '"422"' not in text
    assert "HTTPValidationError" not in text


SUCCESS = {"200", "201"}
"""201: the gateway's writes and token creation answer Created."""


def _success(operation: dict) -> dict:
    [code] = set(operation["responses"]) & SUCCESS
    return operation["responses"][code]


def test_every_operation_declares_a_response_model(document) -> None:
    for method, path, operation in _operations(document):
        content = _success(operation)["content"]
        if "application/json" not in content:  # a file's bytes
            assert list(content) == ["application/octet-stream"], (method, path)
            continue
        schema = content["application/json"]["schema"]
        assert schema not in ({}, {"type": "object"}), (method, path)
        assert "$ref" in schema or "additionalProperties" in schema, (method, path, schema)


def test_every_error_status_uses_the_error_body(document) -> None:
    for method, path, operation in _operations(document):
        codes = set(operation["responses"]) - SUCCESS
        assert codes, (method, path)
        if path == "/health":  # open, but a wrong token is refused (and throttled)
            assert codes == {"401", "429", "503"}
            continue
        assert "401" in codes and "503" in codes, (method, path)
        if method in ("post", "put", "patch", "delete"):  # refused from another site's page
            assert "403" in codes, (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert codes & {"400", "404"}, (method, path)
        if operation.get("requestBody"):
            assert "413" in codes and "400" in codes, (method, path)
        for code in codes:
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"ok", "error"} and error["additionalProperties"] is False


def test_name_rules_are_visible(document) -> None:
    schemas = document["components"]["schemas"]
    for model, field in [("ToolIn", "name"), ("DatasetIn", "name"), ("StepIn", "tool"), ("RunRequest", "name")]:
        prop = schemas[model]["properties"][field]
        assert prop["pattern"] == NAME_RE.pattern, (model, prop)
        assert prop["minLength"] == 1 and prop["maxLength"] == 64


def test_names_in_paths_document_the_rules(document) -> None:
    for path in (
        "/registry/tools/{name}",
        "/registry/datasets/{name}",
        "/registry/pipelines/{name}",
        "/pipeline/{name}",
    ):
        for operation in document["paths"][path].values():
            (param,) = [p for p in operation["parameters"] if p["name"] == "name"]
            assert param["schema"]["pattern"] == NAME_RE.pattern, path


def test_size_limits_are_visible(document) -> None:
    step = document["components"]["schemas"]["StepIn"]["properties"]
    assert step["env"]["maxProperties"] == 100
    assert step["env"]["additionalProperties"]["maxLength"] == 8192
    pipeline = document["components"]["schemas"]["PipelineIn"]["properties"]
    assert pipeline["steps"]["maxItems"] == 50
    assert pipeline["description"]["maxLength"] == 2000


def test_seed_operations_are_kept(document) -> None:
    for method, path in SEED_OPERATIONS:
        assert method in document["paths"][path], (method, path)


def test_bad_names_keep_their_messages(client: TestClient) -> None:
    response = client.post("/registry/tools", json={"name": "bad name", "image": "img"})
    assert response.status_code == 400
    assert "invalid name 'bad name': use 1-64 letters, digits, '-' or '_'" in response.json()["error"]["message"]


def test_answers_keep_their_shape(client: TestClient) -> None:
    """Response models check answers without adding keys the route does not return."""
    client.post("/registry/tools", json={"name": "t", "image": "img"}).raise_for_status()
    client.post("/registry/datasets", json={"name": "d", "body": {"master": "https://x.org/d.git", "nodes": []}})
    init = client.post("/pipeline/init", json={"tool": "t", "dataset": "d"}).json()
    assert init["pipeline"]["steps"] == [
        {"name": "t", "tool": "t", "output_dataset": "d", "env": {}, "docker_socket": False}
    ]
    scheduled = client.post("/pipeline/run", json={"name": "t-d", "cron": "0 * * * *"}).json()
    assert set(scheduled) == {"ok", "scheduled", "job"}
    assert client.get("/registry/datasets/d").json() == {
        "name": "d",
        "master": "https://x.org/d.git",
        "nodes": [],
        "policy": "merge",
        "vote_deadline": 600,
    }
    assert set(client.get("/federation/status").json()) == {"instance", "registry", "instances"}
