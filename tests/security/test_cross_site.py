"""Cross-site writes: a page on another site made the browser post to the API on loopback (no
token needed) — a form cancelling a run, a fetch testing the notifications. Now each is refused
(403 from another site, 415 for a body that is no JSON) and changes nothing; clients that are
no browser, the dashboard's own forms and the gateway's tools go on as before."""

from __future__ import annotations

import logging

import pytest
from waiting import wait_for

from mao.config import NotificationRule

EVIL = "https://evil.example"
FORM = "application/x-www-form-urlencoded"


def _start_gated(api) -> int:
    run_id = api.client.post("/pipeline/run", json={"name": "demo"}).json()["run_id"]
    wait_for(lambda: api.client.get(f"/runs/{run_id}").json()["status"] == "running", 15, "the run to start")
    return run_id


@pytest.mark.parametrize(
    "headers",
    [
        # what an auto-submitted <form method=post> of another site sends
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Content-Type": FORM},
        {"Origin": EVIL, "Content-Type": FORM},  # a browser without Sec-Fetch-*
        {"Origin": "null", "Content-Type": FORM},  # a sandboxed frame, a file:// page
        {"Sec-Fetch-Site": "cross-site"},  # fetch(url, {method: "POST", mode: "no-cors"})
        {"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost:8080"},
        {"Content-Type": FORM},  # an old browser with neither header: the form's body type gives it away
        {"Content-Type": "text/plain"},
        {"Content-Type": "multipart/form-data; boundary=x"},
    ],
    ids=[
        "form",
        "form-no-fetch-metadata",
        "null-origin",
        "no-cors-fetch",
        "same-site",
        "old-browser",
        "text",
        "multipart",
    ],
)
def test_a_cross_site_cancel_leaves_the_run_running(make_api, gate, headers) -> None:
    api = make_api()
    api.define(pipeline_tool="gated-tool")
    run_id = _start_gated(api)
    refused = api.client.post(f"/runs/{run_id}/cancel", headers=headers, content=b"")
    assert refused.status_code in (403, 415), refused.text
    body = refused.json()
    assert body["ok"] is False and body["error"]["code"] in ("forbidden", "unsupported_media_type")
    gate.set()  # the run ends as it would have: succeeded, not cancelled
    ended = wait_for(
        lambda: (r := api.client.get(f"/runs/{run_id}").json())["status"] not in ("pending", "running") and r,
        30,
        "the run to end",
    )
    assert ended["status"] == "succeeded", ended


def test_the_same_cancel_from_maoctl_curl_or_the_api_page_works(make_api) -> None:
    api = make_api()
    api.define(pipeline_tool="gated-tool")
    for headers in (
        {},  # maoctl (httpx), curl -X POST: no Origin, no body
        {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},  # /docs' "Try it out"
        {"Content-Type": "application/json"},
    ):
        run_id = _start_gated(api)
        answer = api.client.post(f"/runs/{run_id}/cancel", headers=headers)
        assert answer.status_code == 200, (headers, answer.text)
        wait_for(
            lambda i=run_id: api.client.get(f"/runs/{i}").json()["status"] == "cancelled", 30, "the run to be cancelled"
        )


def test_a_cross_site_notification_test_sends_nothing(make_api, caplog) -> None:
    api = make_api(notifications=[NotificationRule(name="ops", events=["run.failed"], log=True)])
    caplog.set_level(logging.WARNING, logger="mao.notifications.dispatcher")
    for headers in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}, {"Content-Type": "text/plain"}):
        refused = api.client.post("/notifications/test", headers=headers, content=b"{}")
        assert refused.status_code in (403, 415), refused.text
    sent = api.client.post("/notifications/test", json={})  # the answer comes once it was sent
    assert sent.status_code == 200 and sent.json()["deliveries"][0]["delivered"] is True
    tests = [r for r in caplog.records if r.getMessage().startswith("notification test")]
    assert len(tests) == 1, [r.getMessage() for r in tests]


def test_cross_site_writes_of_every_kind_change_nothing(make_api) -> None:
    api = make_api()
    api.define()
    before = {p: api.client.get(p).json() for p in ("/registry/tools", "/registry/datasets", "/pipeline", "/jobs")}
    foreign = {"Origin": EVIL}
    for method, path, body in (
        ("POST", "/registry/tools", {"name": "evil", "image": "img/ok"}),
        ("DELETE", "/registry/tools/ok-tool", None),
        ("POST", "/pipeline/run", {"name": "demo", "cron": "* * * * *"}),
        ("PUT", "/pipeline/demo/variables", {"name": "X", "value": "1"}),
        ("DELETE", "/pipeline/demo", None),
        ("POST", "/gateway/tokens", {"name": "t", "dataset": "obs", "scope": "write"}),
    ):
        answer = api.client.request(method, path, json=body, headers=foreign)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "another site" in answer.json()["error"]["message"]
    after = {p: api.client.get(p).json() for p in before}
    assert after == before
    assert api.client.get("/gateway/tokens").json()["tokens"] == []


def test_an_origin_of_this_server_or_its_public_url_may_write(make_api) -> None:
    api = make_api(public_url="https://mao.example.org")
    # the scheme does not count: a proxy in front of it may take HTTPS and forward HTTP
    for number, origin in enumerate(("http://testserver", "https://mao.example.org", "http://mao.example.org")):
        name = f"t{number}"
        answer = api.client.post("/registry/tools", json={"name": name, "image": "i"}, headers={"Origin": origin})
        assert answer.status_code == 200, (origin, answer.text)
    for origin in ("http://testserver:8080", "https://mao.example.org:8443", "https://example.org"):
        answer = api.client.post("/registry/tools", json={"name": "x", "image": "i"}, headers={"Origin": origin})
        assert answer.status_code == 403, origin
    assert "x" not in api.client.get("/registry/tools").json()


def test_a_form_body_is_a_415_naming_the_content_type_and_json_variants_pass(make_api) -> None:
    api = make_api()
    form = api.client.post("/registry/tools", content=b"name=t&image=i", headers={"Content-Type": FORM})
    assert form.status_code == 415
    error = form.json()["error"]
    assert error["code"] == "unsupported_media_type" and FORM in error["message"]
    assert "application/json" in error["message"]
    variants = ("application/json; charset=utf-8", "APPLICATION/JSON", "application/merge-patch+json")
    for number, content_type in enumerate(variants):
        name = f"t{number}"
        body = f'{{"name": "{name}", "image": "i"}}'.encode()
        answer = api.client.post("/registry/tools", content=body, headers={"Content-Type": content_type})
        assert answer.status_code == 200, (content_type, answer.text)
    assert set(api.client.get("/registry/tools").json()) == {"t0", "t1", "t2"}


def test_reads_are_not_refused_for_their_headers(make_api) -> None:
    api = make_api()
    answer = api.client.get("/registry/tools", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 200  # the browser does not let the page read it: no CORS here


def test_the_gateway_takes_records_of_any_declared_type_from_its_tools(make_api) -> None:
    """Its clients hold a token a browser would not send: the record is read as JSON whatever its type."""
    api = make_api()
    api.define()
    secret = api.client.post("/gateway/tokens", json={"name": "sensor", "dataset": "obs", "scope": "write"}).json()
    auth = {"Authorization": f"Bearer {secret['secret']}"}
    for content_type in ("application/json", FORM):  # curl -d without -H sends the latter
        answer = api.client.post(
            "/gateway/datasets/obs/records", content=b'{"temp": 21.5}', headers={**auth, "Content-Type": content_type}
        )
        assert answer.status_code == 201, (content_type, answer.text)
    refused = api.client.post("/gateway/datasets/obs/records", content=b'{"temp": 1}', headers={**auth, "Origin": EVIL})
    assert refused.status_code == 403


def test_the_dashboards_own_forms_keep_working(make_api) -> None:
    api = make_api()
    api.define()
    own = {"Origin": "http://testserver"}
    run = api.client.post("/ui/pipelines/demo/run", headers=own, follow_redirects=False)
    assert run.status_code == 303 and run.headers["location"].startswith("/ui/runs/")
    scheduled = api.client.post("/ui/pipelines/demo/schedule", data={"cron": "0 * * * *"}, headers=own)
    assert scheduled.status_code == 200 and [j["id"] for j in api.client.get("/jobs").json()["jobs"]] == ["demo"]
    foreign = api.client.post("/ui/pipelines/demo/unschedule", headers={**own, "Sec-Fetch-Site": "cross-site"})
    assert foreign.status_code == 403
    assert [j["id"] for j in api.client.get("/jobs").json()["jobs"]] == ["demo"]
