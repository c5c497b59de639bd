"""``GET /pipeline`` answers a JSON list of pipelines: the first MAO's client lists them
with it (``maoctl.py pipeline get`` without a name) and iterates over the answer."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_get_pipeline_is_a_json_list(client: TestClient) -> None:
    assert client.get("/pipeline").json() == []
    assert client.post("/registry/tools", json={"name": "collector", "image": "mao/collector:1"}).status_code == 200
    body = {"name": "hub-data", "body": {"master": "https://example.org/hub-data.git", "nodes": []}}
    assert client.post("/registry/datasets", json=body).status_code == 200
    # the first MAO's way of defining a pipeline: one tool, one dataset
    assert client.post("/pipeline/init", json={"tool": "collector", "dataset": "hub-data"}).status_code == 200
    listing = client.get("/pipeline").json()
    assert isinstance(listing, list)
    [pipeline] = listing
    assert pipeline["name"] == "collector-hub-data"
    assert [s["tool"] for s in pipeline["steps"]] == ["collector"]
    assert client.get(f"/pipeline/{pipeline['name']}").json() == pipeline


def test_openapi_documents_the_list(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["paths"]["/pipeline"]["get"]["responses"]["200"]["content"]
    ref = schema["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert client.get("/openapi.json").json()["components"]["schemas"][ref]["type"] == "array"
