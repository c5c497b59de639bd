"""The one error body: ``{"ok": false, "error": {"code", "message"[, "details"]}}`` and nothing
else at top level, from every error class and every status the API answers with."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import mao.errors as errors_module
from mao.errors import MAOError, MergeConflict, MissingDependencies, RegistryUnavailable
from mao.web.errors import error_body

TOP_LEVEL = {"ok", "error"}


def _all_error_classes() -> list[type[MAOError]]:
    out, todo = [], [MAOError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted({c for c in out if c.__module__ == errors_module.__name__}, key=lambda c: c.__name__)


def _instance(cls: type[MAOError]) -> MAOError:
    if cls is MissingDependencies:
        return cls(["t"], ["d"])
    if issubclass(cls, MergeConflict):
        return cls("conflict", ["a.csv"])
    return cls("what to fix", details={"k": 1})


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_builds_the_one_body(cls) -> None:
    exc = _instance(cls)
    body = exc.to_dict()
    assert set(body) == TOP_LEVEL
    assert body == error_body(exc.code, exc.message, exc.details)
    assert set(body["error"]) == {"code", "message", "details"}


def test_missing_dependencies_keep_their_lists_in_details_only() -> None:
    body = MissingDependencies(["t1"], ["d1", "d2"]).to_dict()
    assert "errors" not in body
    assert body["error"]["details"] == {"missing_tools": ["t1"], "missing_datasets": ["d1", "d2"]}


def test_error_body_leaves_out_empty_details() -> None:
    assert error_body("c", "m") == {"ok": False, "error": {"code": "c", "message": "m"}}


def _check(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == TOP_LEVEL, body
    assert body["ok"] is False
    assert set(body["error"]) <= {"code", "message", "details"}
    return body["error"]


def test_http_answers_carry_only_the_one_body(client: TestClient, make_client, monkeypatch) -> None:
    tool = {"name": "t", "image": "img"}
    assert client.post("/registry/tools", json=tool).status_code == 200
    _check(client.post("/registry/tools", json={"name": "bad name", "image": "i"}), 400)
    _check(
        client.post(
            "/pipeline/init", json={"name": "p", "steps": [{"name": "s", "tool": "nope", "output_dataset": "none"}]}
        ),
        400,
    )
    _check(client.get("/registry/tools/unknown"), 404)
    _check(client.put("/registry/tools"), 405)
    _check(client.post("/registry/tools", json=tool), 409)
    _check(client.post("/registry/tools", content=b"x" * (2 << 20), headers={"content-type": "application/json"}), 413)

    registry = client.app.state.instance.registry

    def down(*_a, **_k):
        raise RegistryUnavailable("registry is down for the test")

    monkeypatch.setattr(registry, "list", down)
    monkeypatch.setattr(registry, "cached", lambda _prefix: None)  # and no current copy in memory
    assert _check(client.get("/registry/tools"), 503)["code"] == "registry_unavailable"

    secured = make_client(api_token="a-long-enough-token-for-the-test-0123456789")
    _check(secured.get("/registry/tools"), 401)
