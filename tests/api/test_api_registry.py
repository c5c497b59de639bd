"""The seed's registry endpoints, health and OpenAPI, on a standalone instance."""

from __future__ import annotations

from fastapi.testclient import TestClient

MASTER = "https://github.com/mao-mao-research/hub-data.git"

TOOL = {
    "name": "dockerhub-collector",
    "author": "Alice Example",
    "image": "mao/dockerhub-collector:1.0",
    "data_repo": "git@github.com:mao-mao-research/dockerhub-data.git",
    "code_repo": "https://github.com/mao-mao-research/dockerhub-collector",
    "artefact": "docker-images",
    "description": "Fetches metadata from DockerHub",
}


def test_seed_curl_registers_a_dataset(client: TestClient) -> None:
    # curl -X POST http://0.0.0.0:8080/registry/datasets -H 'content-type: application/json'
    #      -d '{"name": "name-of-dataset", "body": {"master": "git-link", "nodes": []}}'
    response = client.post(
        "/registry/datasets",
        content='{"name": "name-of-dataset", "body": {"master": "' + MASTER + '", "nodes": []}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True

    assert client.get("/registry/datasets").json() == {
        "name-of-dataset": {"master": MASTER, "nodes": [], "policy": "merge", "vote_deadline": 600}
    }
    assert client.get("/registry/datasets/name-of-dataset").json() == {
        "name": "name-of-dataset",
        "master": MASTER,
        "nodes": [],
        "policy": "merge",
        "vote_deadline": 600,
    }


def test_older_flat_dataset_body_is_accepted(client: TestClient) -> None:
    response = client.post("/registry/datasets", json={"name": "flat", "url": MASTER})
    assert response.status_code == 200, response.text
    assert client.get("/registry/datasets/flat").json() == {
        "name": "flat",
        "master": MASTER,
        "nodes": [],
        "policy": "merge",
        "vote_deadline": 600,
    }
    bad = client.post("/registry/datasets", json={"name": "flat2", "url": "not a url"})
    assert bad.status_code == 400
    assert "flat2" not in client.get("/registry/datasets").json()


def test_dataset_remove(client: TestClient) -> None:
    client.post("/registry/datasets", json={"name": "d1", "body": {"master": MASTER, "nodes": []}})
    client.post("/registry/datasets", json={"name": "d2", "body": {"master": "/srv/git/d2.git"}})
    response = client.delete("/registry/datasets/d1")
    assert response.status_code == 200 and response.json()["ok"] is True
    assert list(client.get("/registry/datasets").json()) == ["d2"]
    assert client.get("/registry/datasets/d1").status_code == 404
    assert client.delete("/registry/datasets/d1").status_code == 404


def test_tool_crud_with_the_seed_fields(client: TestClient) -> None:
    assert client.get("/registry/tools").json() == {}
    response = client.post("/registry/tools", json=TOOL)
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    assert response.json()["tool"] == TOOL

    minimal = client.post("/registry/tools", json={"name": "minimal", "image": "busybox"})
    assert minimal.status_code == 200, minimal.text

    listed = client.get("/registry/tools").json()
    assert list(listed) == ["dockerhub-collector", "minimal"]
    assert listed["dockerhub-collector"] == TOOL
    assert listed["minimal"]["image"] == "busybox" and listed["minimal"]["author"] == ""
    assert client.get("/registry/tools/dockerhub-collector").json() == TOOL

    removed = client.delete("/registry/tools/dockerhub-collector")
    assert removed.status_code == 200 and removed.json() == {"ok": True, "name": "dockerhub-collector"}
    assert list(client.get("/registry/tools").json()) == ["minimal"]
    missing = client.get("/registry/tools/dockerhub-collector")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_duplicate_tool_is_409_and_keeps_the_first(client: TestClient) -> None:
    assert client.post("/registry/tools", json=TOOL).status_code == 200
    again = client.post("/registry/tools", json={**TOOL, "image": "other:2"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_exists"
    assert "dockerhub-collector" in again.json()["error"]["message"]
    assert client.get("/registry/tools/dockerhub-collector").json()["image"] == TOOL["image"]


def test_registry_outlives_a_restart(make_client) -> None:
    first = make_client()
    first.post("/registry/tools", json=TOOL)
    first.post("/registry/datasets", json={"name": "d", "body": {"master": MASTER, "nodes": []}})
    first.__exit__(None, None, None)
    second = make_client()
    assert list(second.get("/registry/tools").json()) == ["dockerhub-collector"]
    assert list(second.get("/registry/datasets").json()) == ["d"]


def test_registered_pipelines(client: TestClient) -> None:
    assert client.get("/registry/pipelines").json() == {}
    response = client.get("/registry/pipelines/nope")
    assert response.status_code == 404
    body = response.json()
    assert body["ok"] is False
    assert body["error"]["code"] == "not_found"
    assert "nope" in body["error"]["message"]


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["instance"] == "test-node"
    assert body["checks"]["store"]["ok"] and body["checks"]["registry"]["ok"]
    assert body["checks"]["registry"]["backend"] == "local"


def test_openapi_docs(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "MAO Orchestrator"
    for path in (
        "/registry/tools",
        "/registry/tools/{name}",
        "/registry/datasets",
        "/registry/datasets/{name}",
        "/registry/pipelines",
        "/registry/pipelines/{name}",
        "/health",
    ):
        assert path in spec["paths"], path
    assert {"get", "post"} <= set(spec["paths"]["/registry/datasets"])
    assert {"get", "delete"} <= set(spec["paths"]["/registry/tools/{name}"])
