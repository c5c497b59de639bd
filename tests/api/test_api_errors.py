"""One error shape for every 4xx/5xx, and bad input that changes nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mao.api import reads
from mao.catalog import Catalog

MASTER = "https://github.com/mao-mao-research/hub-data.git"
TOOL = {"name": "collector", "image": "mao/collector:1.0", "author": "A", "artefact": "docker"}
DATASET = {"name": "hub-data", "body": {"master": MASTER, "nodes": []}}


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    assert client.post("/registry/tools", json=TOOL).status_code == 200
    assert client.post("/registry/datasets", json=DATASET).status_code == 200
    return client


def snapshot(client: TestClient) -> tuple:
    return client.get("/registry/tools").json(), client.get("/registry/datasets").json()


# ------------------------------------------------------------------------ the shape


ERRORS = [
    ("GET", "/no/such/path", None, 404, "not_found"),
    ("PUT", "/registry/tools", None, 405, "method_not_allowed"),
    ("POST", "/registry/tools", {"name": "bad name", "image": "i"}, 400, "invalid_input"),
    ("POST", "/registry/tools", TOOL, 409, "already_exists"),
    ("GET", "/registry/tools/unknown", None, 404, "not_found"),
    ("DELETE", "/registry/datasets/unknown", None, 404, "not_found"),
    ("GET", "/registry/tools/bad%20name", None, 400, "invalid_input"),
    ("GET", "/registry/pipelines/unknown", None, 404, "not_found"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), ERRORS)
def test_error_shape(
    assert_error_shape, seeded: TestClient, method: str, path: str, body, status: int, code: str
) -> None:
    error = assert_error_shape(seeded.request(method, path, json=body), status)
    assert error["code"] == code


def test_error_shape_of_malformed_json(assert_error_shape, client: TestClient) -> None:
    response = client.post("/registry/tools", content=b'{"name": "x",', headers={"content-type": "application/json"})
    error = assert_error_shape(response, 400)
    assert error["code"] == "invalid_input" and "JSON" in error["message"]


def test_validation_errors_name_the_field(assert_error_shape, client: TestClient) -> None:
    error = assert_error_shape(
        client.post("/registry/tools", json={"name": "ok", "image": "i", "data_repo": "ftp://x"}), 400
    )
    assert "data_repo" in error["message"]
    assert any(f["loc"][-1] == "data_repo" for f in error["details"]["fields"])


def test_error_shape_of_unexpected_errors(assert_error_shape, make_client, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(raise_server_exceptions=False)

    def boom(*args):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Catalog, "tools", boom)  # the catalog's answer, when the read cache is not current
    monkeypatch.setattr(reads, "render", boom)  # and the rendering of the cache's answer
    error = assert_error_shape(client.get("/registry/tools"), 500)
    assert error["code"] == "internal_error"
    assert "secret internals" not in error["message"]


def test_error_shape_of_an_unhealthy_instance(
    assert_error_shape, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mao.errors import RegistryUnavailable

    registry = client.app.state.instance.registry

    def down():
        raise RegistryUnavailable("registry is down for the test")

    monkeypatch.setattr(registry, "ping", down)
    response = client.get("/health")
    error = assert_error_shape(response, 503)
    assert "registry is down for the test" in error["message"]
    assert response.json()["checks"]["registry"]["ok"] is False
    assert response.json()["checks"]["store"]["ok"] is True


# ------------------------------------------------------------------------ bad input changes nothing

BAD_NAMES = ["bad name", "../x", "a/b", "", "x" * 65, "$(rm)", ";ls", "-x", "a.b", None, 7]
BAD_URLS = ["not a url", "ftp://x", "http://x/../y", "`id`", "https://x/$(id)", "ssh://-oProxyCommand=x/y", "git-link"]


def _bad_tool_bodies() -> list:
    bodies: list = [{**TOOL, "name": name} for name in BAD_NAMES]
    bodies += [{**TOOL, "data_repo": url} for url in BAD_URLS]
    bodies += [{**TOOL, "code_repo": url} for url in BAD_URLS]
    bodies += [
        {},
        {"name": "t2"},  # no image
        {"image": "i"},  # no name
        {**TOOL, "name": "t2", "extra": 1},
        {**TOOL, "name": "t2", "image": ["i"]},
        {**TOOL, "name": "t2", "image": ""},
        {**TOOL, "name": "t2", "image": "img; rm -rf /"},
        {**TOOL, "name": "t2", "author": {"a": 1}},
        {**TOOL, "name": "t2", "description": "x" * 5000},
        TOOL,  # duplicate
        [TOOL],
        "collector",
        None,
    ]
    return bodies


def _bad_dataset_bodies() -> list:
    bodies: list = [{**DATASET, "name": name} for name in BAD_NAMES]
    bodies += [{"name": "d2", "body": {"master": url, "nodes": []}} for url in BAD_URLS]
    bodies += [
        {},
        {"name": "d2"},
        {"body": DATASET["body"]},
        {"name": "d2", "body": {"nodes": []}},
        {"name": "d2", "body": {"master": MASTER, "nodes": "main"}},
        {"name": "d2", "body": {"master": MASTER, "nodes": ["../../x"]}},
        {"name": "d2", "body": {"master": 5, "nodes": []}},
        {"name": "d2", "body": MASTER},
        {"name": "d2", "body": {"master": MASTER, "nodes": []}, "extra": True},
        {"name": "d2", "body": {"master": MASTER, "nodes": [], "extra": True}},
        {"name": "d2", "master": MASTER},
        DATASET,  # duplicate
        [DATASET],
        None,
    ]
    return bodies


@pytest.mark.parametrize("body", _bad_tool_bodies())
def test_bad_tool_is_rejected_and_changes_nothing(assert_error_shape, seeded: TestClient, body) -> None:
    before = snapshot(seeded)
    response = seeded.post("/registry/tools", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert_error_shape(response)
    assert snapshot(seeded) == before


@pytest.mark.parametrize("body", _bad_dataset_bodies())
def test_bad_dataset_is_rejected_and_changes_nothing(assert_error_shape, seeded: TestClient, body) -> None:
    before = snapshot(seeded)
    response = seeded.post("/registry/datasets", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert_error_shape(response)
    assert snapshot(seeded) == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"name": "t2", "image": ', "application/json"),
        (b"not json at all", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"name=t2&image=i", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
    ],
)
@pytest.mark.parametrize("path", ["/registry/tools", "/registry/datasets"])
def test_malformed_bodies_are_rejected_and_change_nothing(
    assert_error_shape, seeded: TestClient, path: str, content: bytes, content_type: str
) -> None:
    before = snapshot(seeded)
    response = seeded.post(path, content=content, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert_error_shape(response)
    assert snapshot(seeded) == before


PATH_NAMES = ["bad name", "../x", "a/b", "x" * 65, "$(rm)", ";ls", "unknown", "..", "%2e%2e"]


@pytest.mark.parametrize("kind", ["tools", "datasets"])
@pytest.mark.parametrize("name", PATH_NAMES)
def test_get_and_delete_by_bad_or_unknown_name(assert_error_shape, seeded: TestClient, kind: str, name: str) -> None:
    before = snapshot(seeded)
    for method in ("GET", "DELETE"):
        response = seeded.request(method, f"/registry/{kind}/{name}")
        assert 400 <= response.status_code < 500, (method, response.text)
        assert_error_shape(response)
    assert snapshot(seeded) == before


def test_delete_with_an_empty_name_removes_nothing(assert_error_shape, seeded: TestClient) -> None:
    before = snapshot(seeded)
    for kind in ("tools", "datasets"):
        response = seeded.delete(f"/registry/{kind}/")
        assert 400 <= response.status_code < 500
        assert_error_shape(response)
    assert snapshot(seeded) == before


def test_a_form_body_names_the_content_type(client) -> None:
    """``curl -d '{...}'`` without ``-H`` sends a form: the 415 says which content type to use."""
    response = client.post(
        "/registry/tools",
        content='{"name": "t", "image": "busybox"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    message = response.json()["error"]["message"]
    assert "Content-Type: application/json" in message and "application/x-www-form-urlencoded" in message
    assert client.get("/registry/tools").json() == {}
    json_body = client.post("/registry/tools", json={"name": "", "image": "busybox"})
    assert json_body.status_code == 400 and "Content-Type" not in json_body.json()["error"]["message"]
