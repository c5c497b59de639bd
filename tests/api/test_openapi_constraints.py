"""The OpenAPI document declares what the API enforces: named response schemas for every
answer (the registry listings served from cached bytes too), and the shapes of crons, slots,
windows, variable names, pipeline forms and metric rules, each checked against what the API
takes and refuses."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from mao.errors import InvalidInput
from mao.models import PipelineIn, StepIn, check_cron_shape


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from mao.api.app import create_app
    from mao.config import Settings

    settings = Settings(instance_name="doc-node", data_dir=tmp_path_factory.mktemp("doc-data"))
    return create_app(settings, background=False).openapi()


def _schemas(document: dict) -> dict:
    return document["components"]["schemas"]


def _param(document: dict, path: str, method: str, name: str) -> dict:
    [param] = [p for p in document["paths"][path][method]["parameters"] if p["name"] == name]
    return param["schema"]


def _pattern(schema: dict) -> str:
    if "pattern" in schema:
        return schema["pattern"]
    [pattern] = [s["pattern"] for s in schema.get("anyOf", []) if "pattern" in s]
    return pattern


def test_every_json_answer_is_a_named_schema(document) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            [code] = set(operation["responses"]) & {"200", "201"}
            content = operation["responses"][code]["content"]
            if "application/json" in content:
                assert set(content["application/json"]["schema"]) == {"$ref"}, (method, path)
            else:
                assert content["application/octet-stream"]["schema"] == {"type": "string", "format": "binary"}


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/registry/tools", "ToolListing"),
        ("/registry/datasets", "DatasetListing"),
        ("/registry/pipelines", "PipelineDocListing"),
    ],
)
def test_the_cached_listings_declare_their_documents(document, path, model) -> None:
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": f"#/components/schemas/{model}"}
    assert "$ref" in _schemas(document)[model]["additionalProperties"]


CRONS = {
    "0 12 * * *": True,
    "*/15 9-17 * * MON-fri": True,
    "0 0 last * *": True,
    "0 0 1,15 jan,Jul 0-6": True,
    "0 0 31 2 *": True,  # the right shape; that it never fires is said when it is scheduled
    "0 0 * * 7": False,
    "60 * * * *": False,
    "* * * *": False,
    "*/0 * * * *": False,
    "0\t0 * * *": False,
    "@daily": False,
    "": False,
}


@pytest.mark.parametrize(("cron", "taken"), CRONS.items())
def test_the_declared_cron_shape_is_the_one_taken(document, cron, taken) -> None:
    declared = _pattern(_schemas(document)["RunRequest"]["properties"]["cron"])
    assert bool(re.search(declared, cron)) == taken
    try:
        check_cron_shape(cron)
    except InvalidInput as exc:
        assert not taken
        assert exc.message.startswith(("invalid cron string", "empty cron string")), exc.message
    else:
        assert taken


def test_a_cron_of_the_wrong_shape_is_a_400_naming_it(client: TestClient, assert_error_shape) -> None:
    client.post("/registry/tools", json={"name": "t", "image": "img"}).raise_for_status()
    client.post("/registry/datasets", json={"name": "d", "body": {"master": "https://x.org/d.git"}}).raise_for_status()
    client.post("/pipeline/init", json={"tool": "t", "dataset": "d"}).raise_for_status()
    error = assert_error_shape(client.post("/pipeline/run", json={"name": "t-d", "cron": "0 0 * * 7"}), 400)
    assert error["message"].startswith("invalid cron string '0 0 * * 7': the weekday '7'"), error
    assert client.get("/jobs").json()["jobs"] == []


SLOTS = {
    "2026-11-28T12:00:00Z": True,
    "2026-11-28T13:00:00+01:00": True,
    "20261128T120000Z": True,
    "2026-11-28T12:00:00": False,
    "2026-11-28T12:00Z": False,
    "2026-11-28T12:00:00.5Z": False,
    "2026-13-01T00:00:00Z": False,
    "noon": False,
}


@pytest.mark.parametrize(("slot", "taken"), SLOTS.items())
def test_the_declared_slot_shape_is_the_one_taken(document, client: TestClient, slot, taken) -> None:
    declared = _pattern(_schemas(document)["RunRequest"]["properties"]["slot"])
    assert bool(re.search(declared, slot)) == taken
    assert _pattern(_param(document, "/datasets/{name}/votes", "get", "slot")) == declared
    assert _pattern(_schemas(document)["ResolveIn"]["properties"]["slot"]) == declared
    response = client.get("/datasets/nothing-here/votes", params={"slot": slot})
    assert (response.status_code != 400) == taken, response.text


@pytest.mark.parametrize(
    ("since", "taken"),
    [("24h", True), ("7d", True), ("2026-11-28T12:00:00Z", True), ("1y", False), ("yesterday", False)],
)
def test_the_declared_coverage_window_is_the_one_taken(document, client: TestClient, since, taken) -> None:
    declared = _pattern(_param(document, "/federation/coverage", "get", "since"))
    assert bool(re.search(declared, since)) == taken
    assert _param(document, "/federation/coverage", "get", "pipeline")["pattern"]
    response = client.get("/federation/coverage", params={"pipeline": "nothing-here", "since": since})
    assert (response.status_code != 400) == taken, response.text


def test_variable_names_are_declared_for_env_and_private_variables(document) -> None:
    schemas = _schemas(document)
    env = schemas["StepIn"]["properties"]["env"]["propertyNames"]["pattern"]
    private = schemas["PipelineIn"]["properties"]["private_variables"]["propertyNames"]["pattern"]
    metrics = schemas["StepIn"]["properties"]["metrics"]["propertyNames"]["pattern"]
    for key, taken in {"TOKEN": True, "_x1": True, "1X": False, "A-B": False, "": False}.items():
        assert bool(re.search(env, key)) == bool(re.search(private, key)) == taken
        step = {"name": "s", "tool": "t", "output_dataset": "d", "env": {key: "v"}}
        try:
            StepIn.model_validate(step)
        except ValidationError:
            assert not taken
        else:
            assert taken
    assert re.search(metrics, "rows") and not re.search(metrics, "no rows")


def test_the_two_pipeline_forms_are_declared(document) -> None:
    forms = _schemas(document)["PipelineIn"]["anyOf"]
    assert [sorted(form["required"]) for form in forms] == [["dataset", "tool"], ["name", "steps"]]
    step = {"name": "s", "tool": "t", "output_dataset": "d"}
    for body, taken in [
        ({"tool": "t", "dataset": "d"}, True),
        ({"name": "p", "steps": [step]}, True),
        ({"tool": "t"}, False),
        ({"steps": [step]}, False),
        ({"name": "p", "steps": []}, False),
        ({"name": "p", "tool": "t", "dataset": "d", "steps": [step]}, False),
    ]:
        satisfied = any(
            set(form["required"]) <= set(body)
            and all(_fits(body[key], rule) for key, rule in form["properties"].items() if key in body)
            for form in forms
        )
        assert satisfied == taken, body
        try:
            PipelineIn.model_validate(body)
        except ValidationError:
            assert not taken, body
        else:
            assert taken, body


def _fits(value: object, rule: dict) -> bool:
    if rule.get("type") == "null" and value is not None:
        return False
    if rule.get("type") == "string" and not isinstance(value, str):
        return False
    if isinstance(value, list):
        return rule.get("minItems", 0) <= len(value) <= rule.get("maxItems", len(value))
    return True


def test_mode_goes_with_cron_and_cron_not_with_slot(document) -> None:
    rules = _schemas(document)["RunRequest"]["allOf"]
    assert {"required": ["cron"], "properties": {"cron": {"type": "string"}}} in rules[0]["anyOf"]
    assert {"not": {"required": ["slot"]}} in rules[1]["anyOf"]


def test_a_standalone_instance_has_no_members_a_409(client: TestClient, assert_error_shape) -> None:
    for method, path in [("get", "/federation/members"), ("delete", "/federation/members/m1")]:
        error = assert_error_shape(client.request(method.upper(), path), 409)
        assert "standalone" in error["message"]
    body = {"name": "n2", "peer_url": "http://10.0.0.2:2380"}
    assert client.post("/federation/members", json=body).status_code == 409


@pytest.mark.parametrize("master", ["file://[", "file://\u0000", "https://host:port/r.git", "file://a\u007fb"])
def test_a_git_url_that_cannot_be_parsed_is_a_400(client: TestClient, assert_error_shape, master) -> None:
    """What the fuzz suite found: these were server errors."""
    response = client.post("/registry/datasets", json={"name": "odd", "body": {"master": master}})
    assert "invalid git URL" in assert_error_shape(response, 400)["message"]
    assert client.get("/registry/datasets").json() == {}
