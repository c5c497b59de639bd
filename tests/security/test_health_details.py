"""``/health`` stays open (healthchecks read its status), but when the API has a token its
details (the store's path, etcd's endpoints and errors) need that token."""

from __future__ import annotations

TOKEN = "health-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_without_the_token_health_says_ok_and_nothing_else(make_api, data_dir) -> None:
    api = make_api(api_token=TOKEN)
    answer = api.client.get("/health")
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    assert str(data_dir) not in answer.text and "sqlite" not in answer.text
    detailed = api.client.get("/health", headers=AUTH)
    assert detailed.status_code == 200
    body = detailed.json()
    assert body["instance"] == "sec-node" and body["version"]
    assert str(data_dir) in body["checks"]["registry"]["store"]
    assert api.client.get("/health", headers={"X-MAO-Token": TOKEN}).json()["checks"]["store"]["ok"] is True
    wrong = api.client.get("/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "checks" not in wrong.json()


def test_an_unreachable_etcd_is_a_503_without_its_endpoints_unless_the_token_is_sent(make_api, free_port) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    api = make_api(api_token=TOKEN, registry_backend="etcd", etcd_endpoints=[dead], registry_timeout=1)
    answer = api.client.get("/health")
    assert answer.status_code == 503
    body = answer.json()
    assert set(body) == {"ok", "error"} and body["ok"] is False and body["error"]["code"] == "unavailable"
    assert dead not in answer.text and "127.0.0.1" not in answer.text
    detailed = api.client.get("/health", headers=AUTH)
    assert detailed.status_code == 503
    assert detailed.json()["checks"]["registry"]["ok"] is False and dead in detailed.text


def test_an_instance_without_a_token_keeps_its_details(make_api, data_dir) -> None:
    """Loopback only, nothing to hide from whoever may call every other route."""
    body = make_api().client.get("/health").json()
    assert body["ok"] is True and str(data_dir) in body["checks"]["registry"]["store"]
