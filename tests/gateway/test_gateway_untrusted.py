"""Records and insights the gateway cannot take or serve: a 400 (or a skip) saying why, never a 500,
and nothing written to the dataset's remote."""

from __future__ import annotations

import json

import pytest
from gateway_kit import git, refs

from mao.untrusted import MAX_JSON_DEPTH


def nested(depth: int) -> bytes:
    return b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.fixture
def writer(gw):
    secret = gw.token("probe")
    assert gw.post(secret, {"seed": 1}).status_code == 201  # ground-truth exists: its refs are worth comparing
    return secret


@pytest.mark.parametrize(
    "body, says",
    [
        (nested(30_000), f"nested deeper than {MAX_JSON_DEPTH} levels"),
        (nested(400), f"nested deeper than {MAX_JSON_DEPTH} levels"),
        (nested(MAX_JSON_DEPTH + 1), f"nested deeper than {MAX_JSON_DEPTH} levels"),
        (b'{"a": "\\ud800"}', "not valid Unicode"),
        (b'{"\\udc00": 1}', "not valid Unicode"),
        (b'{"t": NaN}', "NaN is not a number JSON allows"),
        (b'{"t": -Infinity}', "-Infinity is not a number JSON allows"),
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),
    ],
    ids=["30000-deep", "400-deep", "65-deep", "surrogate", "surrogate-key", "nan", "infinity", "utf8-surrogate"],
)
def test_unsafe_records_are_refused_with_a_reason_and_write_nothing(gw, writer, body, says) -> None:
    before = refs(gw.bare)
    answer = gw.post(writer, content=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input" and says in error["message"]
    assert refs(gw.bare) == before


def test_nan_is_refused_before_a_number_schema_sees_it(gw) -> None:
    schema = {"type": "object", "properties": {"t": {"type": "number"}}}
    bare = gw.dataset("typed", record_schema=schema)
    secret = gw.token("thermo", dataset="typed")
    assert gw.post(secret, {"t": 1.5}, dataset="typed").status_code == 201
    before = refs(bare)
    answer = gw.post(secret, content=b'{"t": NaN}', dataset="typed")
    assert answer.status_code == 400 and "NaN" in answer.json()["error"]["message"]
    assert refs(bare) == before
    lines = git(bare, "show", "ground-truth:records/thermo.jsonl").splitlines()
    assert [json.loads(line) for line in lines] == [{"t": 1.5}]  # every stored line is JSON


def test_a_record_at_the_depth_limit_and_a_surrogate_pair_are_taken(gw, writer) -> None:
    deep = nested(MAX_JSON_DEPTH)
    answer = gw.post(writer, content=deep)
    assert answer.status_code == 201, answer.text
    emoji = gw.post(writer, content=b'{"face": "\\ud83d\\ude00"}')
    assert emoji.status_code == 201, emoji.text
    lines = git(gw.bare, "show", "ground-truth:records/probe.jsonl").splitlines()
    assert json.loads(lines[-2]) == json.loads(deep)
    assert json.loads(lines[-1]) == {"face": "\U0001f600"}


def test_a_poisoned_insight_is_skipped_by_the_gateway_listing(gw) -> None:
    secret = gw.token("viewer", scope="read")
    headers = {"Authorization": f"Bearer {secret}"}
    deep: list = []
    for _ in range(400):
        deep = [deep]
    gw.instance.registry.put("insights/hub/analyse", {"value": {"images": 42}})
    gw.instance.registry.put("insights/hub/poisoned", {"value": deep, "run_id": 7})
    listed = gw.client.get("/gateway/insights", headers=headers)
    assert listed.status_code == 200, listed.text
    assert listed.json() == [{"pipeline": "hub", "step": "analyse", "value": {"images": 42}}]
    assert listed.headers["X-MAO-Skipped-Insights"] == "insights/hub/poisoned"
    one = gw.client.get("/gateway/insights/hub/poisoned", headers=headers)
    assert one.status_code == 404
    assert f"nested deeper than {MAX_JSON_DEPTH + 1} levels" in one.json()["error"]["message"]
    assert gw.client.get("/gateway/insights/hub/analyse", headers=headers).json()["value"] == {"images": 42}
