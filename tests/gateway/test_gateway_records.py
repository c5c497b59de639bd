"""Records through the gateway: into ground-truth of a real bare remote with provenance
trailers; every refused request leaves the remote's refs as they were."""

from __future__ import annotations

import json
import threading

from gateway_kit import git, refs

from mao.gateway.records import MAX_RECORD_BYTES


def test_write_token_records_reach_ground_truth_with_trailers(gw) -> None:
    secret = gw.token("sensor-1")
    first = gw.post(secret, {"temp": 21.5, "site": "zurich"})
    second = gw.post(secret, {"temp": 22.0, "site": "zurich"})
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    body = first.json()
    assert body["commit"] and body["record_id"] and body["branch"] == "gateway-sensor-1"

    log = git(gw.bare, "log", "--format=%H%n%(trailers)%x00", "ground-truth")
    assert "Mao-Gateway-Token: sensor-1" in log
    assert "Mao-Instance: gw-node" in log
    for answer in (first, second):
        assert f"Mao-Record-Id: {answer.json()['record_id']}" in log
    content = git(gw.bare, "show", "ground-truth:records/sensor-1.jsonl")
    assert [json.loads(line) for line in content.splitlines()] == [
        {"temp": 21.5, "site": "zurich"},
        {"temp": 22.0, "site": "zurich"},
    ]
    assert git(gw.bare, "rev-parse", "ground-truth").strip() == second.json()["merge_commit"]
    assert "gateway-sensor-1" in gw.client.get("/registry/datasets/obs", headers=gw.operator).json()["nodes"]

    # the same file read back through the gateway with a read token
    reader = gw.token("dashboard", scope="read")
    got = gw.client.get(
        "/gateway/datasets/obs/files/records/sensor-1.jsonl", headers={"Authorization": f"Bearer {reader}"}
    )
    assert got.status_code == 200
    assert got.content.decode() == content


def test_concurrent_records_are_all_kept_and_batched(gw) -> None:
    secret = gw.token("burst")
    answers = []

    def post(i: int) -> None:
        answers.append(gw.post(secret, {"i": i}))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(a.status_code for a in answers) == [201] * 12
    lines = git(gw.bare, "show", "ground-truth:records/burst.jsonl").splitlines()
    assert sorted(json.loads(line)["i"] for line in lines) == list(range(12))
    ids = {a.json()["record_id"] for a in answers}
    log = git(gw.bare, "log", "--format=%(trailers:key=Mao-Record-Id,valueonly)%x00", "gateway-burst")
    per_commit = [[i.strip() for i in entry.split(",") if i.strip()] for entry in log.split("\0") if entry.strip()]
    assert {i for ids_ in per_commit for i in ids_} == ids
    # requests that waited while another wrote went in together: fewer commits than records
    assert len(per_commit) < 12
    assert max(a.json()["batched"] for a in answers) == max(len(c) for c in per_commit) > 1


def test_refused_requests_write_nothing(gw) -> None:
    writer = gw.token("w")
    reader = gw.token("r", scope="read")
    other = gw.dataset("other")
    elsewhere = gw.token("elsewhere", dataset="other")
    assert gw.post(writer, {"seed": 1}).status_code == 201  # ground-truth exists: the refs are worth comparing
    before, before_other = refs(gw.bare), refs(other)

    def refused(status: int, answer) -> dict:
        assert answer.status_code == status, answer.text
        body = answer.json()
        assert body["ok"] is False and body["error"]["message"]
        return body["error"]

    refused(401, gw.post(None, {"a": 1}))
    refused(401, gw.post("mgw_not-a-token", {"a": 1}))
    assert "operator" in refused(401, gw.post("operator-token-0123456789", {"a": 1}))["message"]
    refused(403, gw.post(reader, {"a": 1}))
    refused(403, gw.post(elsewhere, {"a": 1}))  # a write token of another dataset
    refused(413, gw.post(writer, {"blob": "x" * MAX_RECORD_BYTES}))
    refused(400, gw.post(writer, [1, 2, 3]))
    refused(400, gw.post(writer, content=b"{not json"))
    revoked = gw.client.delete("/gateway/tokens/w", headers=gw.operator)
    assert revoked.status_code == 200 and revoked.json()["token"]["revoked"] is True
    refused(401, gw.post(writer, {"a": 1}))
    assert refs(gw.bare) == before
    assert refs(other) == before_other


def test_schema_and_rate_limit_refuse_without_writing(gw) -> None:
    schema = {
        "type": "object",
        "required": ["temp"],
        "properties": {"temp": {"type": "number"}},
        "additionalProperties": False,
    }
    bare = gw.dataset("typed", record_schema=schema)
    secret = gw.token("probe", dataset="typed", rate="3/min")
    assert gw.post(secret, {"temp": 1}, dataset="typed").status_code == 201
    before = refs(bare)
    error = gw.post(secret, {"temp": "hot"}, dataset="typed")
    assert error.status_code == 400
    assert error.json()["error"]["details"]["errors"][0]["path"] == "/temp"
    assert gw.post(secret, {"temp": 2}, dataset="typed").status_code == 201  # third request of 3/min
    before = refs(bare)
    limited = gw.post(secret, {"temp": 3}, dataset="typed")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert refs(bare) == before


def test_tokens_are_separate_from_the_operator_api(gw) -> None:
    secret = gw.token("tool")
    # a gateway token opens no operator route, the operator token no gateway route
    assert gw.client.get("/pipeline", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert gw.client.get("/gateway/tokens", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert gw.client.get("/gateway/insights", headers=gw.operator).status_code == 401
    listed = gw.client.get("/gateway/tokens", headers=gw.operator).json()["tokens"]
    assert [t["name"] for t in listed] == ["tool"]
    assert secret not in json.dumps(listed)
    assert (
        gw.client.post(
            "/gateway/tokens", json={"name": "tool", "dataset": "obs", "scope": "read"}, headers=gw.operator
        ).status_code
        == 409
    )
    assert (
        gw.client.post(
            "/gateway/tokens", json={"name": "t2", "dataset": "nope", "scope": "read"}, headers=gw.operator
        ).status_code
        == 404
    )
    assert (
        gw.client.post(
            "/gateway/tokens",
            json={"name": "t3", "dataset": "obs", "scope": "read", "rate": "lots"},
            headers=gw.operator,
        ).status_code
        == 400
    )


def test_files_refuse_traversal_and_other_datasets(gw) -> None:
    writer = gw.token("w2")
    assert gw.post(writer, {"a": 1}).status_code == 201
    headers = {"Authorization": f"Bearer {writer}"}
    for path in ("..%2F..%2Fetc%2Fpasswd", "records/%2E%2E/%2E%2E/x", ".git/config", "records//w2.jsonl"):
        answer = gw.client.get(f"/gateway/datasets/obs/files/{path}", headers=headers)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        assert b"root:" not in answer.content
    assert gw.client.get("/gateway/datasets/obs/files/records/nope.jsonl", headers=headers).status_code == 404
    assert gw.client.get("/gateway/datasets/obs/files/records", headers=headers).status_code == 404  # a directory
    gw.dataset("second")
    assert gw.client.get("/gateway/datasets/second/files/x", headers=headers).status_code == 403


def test_insights_are_read_from_the_registry(gw) -> None:
    secret = gw.token("viewer", scope="read")
    headers = {"Authorization": f"Bearer {secret}"}
    gw.instance.registry.put("insights/hub/analyse", {"value": {"images": 42}})
    listed = gw.client.get("/gateway/insights", headers=headers)
    assert listed.status_code == 200
    assert listed.json() == [{"pipeline": "hub", "step": "analyse", "value": {"images": 42}}]
    one = gw.client.get("/gateway/insights/hub/analyse", headers=headers)
    assert one.json()["value"] == {"images": 42}
    assert gw.client.get("/gateway/insights/hub/other", headers=headers).status_code == 404
    assert gw.client.get("/gateway/insights").status_code == 401
