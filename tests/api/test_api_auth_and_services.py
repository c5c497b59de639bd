"""API token, and a registry that cannot be reached."""

from __future__ import annotations

import pytest

TOKEN = "s3cret-token"


@pytest.fixture
def protected(make_client):
    return make_client(api_token=TOKEN)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},  # no scheme
        {"Authorization": "Basic czNjcmV0LXRva2Vu"},
        {"X-MAO-Token": "wrong"},
        {"Authorization": "Bearer "},
    ],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/registry/tools", None),
        ("POST", "/registry/tools", {"name": "t", "image": "i"}),
        ("DELETE", "/registry/tools/t", None),
        ("GET", "/registry/datasets", None),
        ("POST", "/registry/datasets", {"name": "d", "body": {"master": "/srv/d.git"}}),
        ("GET", "/registry/pipelines/p", None),
    ],
)
def test_requests_without_the_token_are_401(assert_error_shape, protected, headers, method, path, body) -> None:
    response = protected.request(method, path, json=body, headers=headers)
    error = assert_error_shape(response, 401)
    assert error["code"] == "unauthorized"
    assert TOKEN not in response.text
    assert protected.get("/registry/tools", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {}


def test_requests_with_the_token_work(protected) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert protected.post("/registry/tools", json={"name": "t", "image": "i"}, headers=auth).status_code == 200
    assert list(protected.get("/registry/tools", headers=auth).json()) == ["t"]
    assert protected.get("/registry/tools/t", headers={"X-MAO-Token": TOKEN}).status_code == 200
    assert protected.delete("/registry/tools/t", headers=auth).status_code == 200


def test_health_is_open(protected) -> None:
    response = protected.get("/health")
    assert response.status_code == 200 and response.json()["ok"] is True


def test_no_token_configured_means_open(client) -> None:
    assert client.get("/registry/tools", headers={"Authorization": "Bearer anything"}).status_code == 200


def test_unreachable_etcd_is_503_naming_the_endpoint(assert_error_shape, make_client, free_port) -> None:
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    client = make_client(registry_backend="etcd", etcd_endpoints=dead, registry_timeout=2)
    for method, path, body in (
        ("GET", "/registry/tools", None),
        ("POST", "/registry/tools", {"name": "t", "image": "i"}),
        ("GET", "/registry/datasets/d", None),
        ("POST", "/registry/datasets", {"name": "d", "body": {"master": "/srv/d.git"}}),
        ("DELETE", "/registry/tools/t", None),
    ):
        response = client.request(method, path, json=body)
        error = assert_error_shape(response, 503)
        assert error["code"] == "registry_unavailable"
        for endpoint in dead:
            assert endpoint in error["message"]

    health = client.get("/health")
    assert_error_shape(health, 503)
    assert health.json()["checks"]["registry"]["ok"] is False
    assert dead[0] in health.json()["checks"]["registry"]["error"]
    assert health.json()["checks"]["store"]["ok"] is True
