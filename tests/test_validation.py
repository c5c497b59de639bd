"""Names, git URLs and the request models built on them."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from mao.datasets.manager import check_branch
from mao.errors import InvalidInput
from mao.federation import add_member
from mao.models import DatasetIn, MetricName, PipelineIn, StepIn, ToolIn
from mao.validation import Name, check_git_url, check_name

GOOD_NAMES = ["a", "dockerhub-collector", "Tool_2", "9lives", "x" * 64]
BAD_NAMES = [
    "",
    " ",
    "bad name",
    "../x",
    "..",
    "a/b",
    "a\\b",
    "x" * 65,
    "$(rm)",
    ";ls",
    "a;b",
    "`id`",
    "a|b",
    "a&b",
    "-leading-dash",
    "_leading",
    ".hidden",
    "a.b",
    "tab\there",
    "new\nline",
    "ünïcode",
    "a'b",
    'a"b',
    None,
    3,
]

GOOD_URLS = [
    "https://github.com/mao-mao-research/hub-data.git",
    "http://127.0.0.1:3000/org/repo",
    "ssh://git@127.0.0.1:2222/srv/git/ds.git",
    "git@github.com:org/repo.git",
    "git://example.org/repo",
    "file:///srv/git/ds.git",
    "/srv/git/ds.git",
]
BAD_URLS = [
    "",
    " https://x/y",
    "not a url",
    "ftp://x",
    "http://x/../y",
    "/srv/../etc",
    "`id`",
    "$(id)",
    "https://x/$(id)",
    "https://x/a;b",
    "https://x/a|b",
    "https://x/a b",
    "relative/path",
    "~/repo",
    "-oProxyCommand=x",
    "ssh://-oProxyCommand=touch%20x/y",
    "ssh://git@-oProxyCommand=x/y",
    "-u@host:repo",
    "--upload-pack=touch",
    "ext::sh -c touch% x",
    None,
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names(name) -> None:
    with pytest.raises(InvalidInput) as info:
        check_name(name, "tool name")
    assert "tool name" in info.value.message
    assert info.value.status_code == 400


@pytest.mark.parametrize("url", GOOD_URLS)
def test_good_git_urls(url: str) -> None:
    assert check_git_url(url) == url


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_git_urls(url) -> None:
    with pytest.raises(InvalidInput):
        check_git_url(url)


def test_tool_model() -> None:
    tool = ToolIn(
        name="collector",
        author="Alice",
        image="registry.example.org/mao/collector:1.0@sha256:abc",
        data_repo="git@github.com:org/data.git",
        code_repo="https://github.com/org/code",
        artefact="docker",
        description="Collects",
    )
    assert tool.model_dump() == {
        "name": "collector",
        "author": "Alice",
        "image": "registry.example.org/mao/collector:1.0@sha256:abc",
        "data_repo": "git@github.com:org/data.git",
        "code_repo": "https://github.com/org/code",
        "artefact": "docker",
        "description": "Collects",
    }
    assert ToolIn(name="t", image="img").data_repo == ""


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "bad name", "image": "img"},
        {"name": "t"},
        {"name": "t", "image": ""},
        {"name": "t", "image": "img; rm -rf /"},
        {"name": "t", "image": "img", "data_repo": "ftp://x"},
        {"name": "t", "image": "img", "code_repo": "`id`"},
        {"name": "t", "image": "img", "extra": 1},
        {"name": 5, "image": "img"},
    ],
)
def test_tool_model_rejects(fields: dict) -> None:
    with pytest.raises(ValidationError):
        ToolIn(**fields)


def test_dataset_model() -> None:
    ds = DatasetIn(name="ds", body={"master": "https://x/y.git", "nodes": ["collect-node1", "feature/x"]})
    assert ds.body.model_dump() == {
        "master": "https://x/y.git",
        "nodes": ["collect-node1", "feature/x"],
        "policy": "merge",
        "vote_deadline": 600,
        "record_schema": None,
        "records_path": None,
        "annex": None,
    }
    assert DatasetIn(name="ds", body={"master": "/srv/ds.git"}).body.nodes == []


@pytest.mark.parametrize(
    "body",
    [
        {"master": "not a url", "nodes": []},
        {"nodes": []},
        {"master": "https://x/y", "nodes": ["../escape"]},
        {"master": "https://x/y", "nodes": ["-flag"]},
        {"master": "https://x/y", "nodes": "main"},
        {"master": "https://x/y", "nodes": [], "extra": True},
        {"master": "https://x/y", "policy": "majority"},
        {"master": "https://x/y", "policy": "vote", "vote_deadline": 0},
    ],
)
def test_dataset_model_rejects(body: dict) -> None:
    with pytest.raises(ValidationError):
        DatasetIn(name="ds", body=body)


def test_pipeline_short_form() -> None:
    p = PipelineIn(tool="collector", dataset="hub-data")
    assert p.name == "collector-hub-data"
    assert p.definition()["steps"] == [
        {"name": "collector", "tool": "collector", "output_dataset": "hub-data", "env": {}, "docker_socket": False}
    ]


def test_pipeline_private_variables() -> None:
    p = PipelineIn(
        name="p",
        steps=[
            StepIn(name="a", tool="t", output_dataset="d", env={"TOKEN": "{{ GITHUB_TOKEN }}", "N": 3}),
            StepIn(name="b", tool="t", output_dataset="d", env={"X": "{{GITHUB_TOKEN}}", "Y": "{{ OTHER }}"}),
        ],
    )
    assert p.placeholders() == ["GITHUB_TOKEN", "OTHER"]
    assert p.steps[0].env["N"] == "3"


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "p"},
        {"tool": "t"},
        {"tool": "t", "dataset": "d", "steps": [{"name": "a", "tool": "t", "output_dataset": "d"}]},
        {"name": "p", "steps": [{"name": "a", "tool": "t", "output_dataset": "d"}] * 2},
        {"name": "p", "steps": [{"name": "a", "tool": "t", "output_dataset": "d", "env": {"BAD-NAME": "x"}}]},
        {"name": "p", "steps": [{"name": "a", "tool": "../t", "output_dataset": "d"}]},
    ],
)
def test_pipeline_model_rejects(fields: dict) -> None:
    with pytest.raises(ValidationError):
        PipelineIn(**fields)


# ------------------------------------------------------------------ a trailing newline
# Python's "$" also matches before a final "\n": every pattern is checked whole (fullmatch),
# and pydantic's pattern= (Rust regex, where "$" is the end of the text) refuses it too.


@pytest.mark.parametrize("name", ["rows\n", "rows\r\n", "tool\n\n"])
def test_a_name_with_a_trailing_newline_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(name, "metric name")
    with pytest.raises(ValidationError):
        TypeAdapter(Name).validate_python(name)
    with pytest.raises(ValidationError):
        TypeAdapter(MetricName).validate_python(name)


def test_pattern_checked_fields_refuse_or_strip_a_trailing_newline() -> None:
    assert ToolIn(name="t", image="nginx:1.27\n").image == "nginx:1.27"  # request models strip text
    body = DatasetIn.model_validate({"name": "d", "body": {"master": "/srv/git/d.git", "records_path": "a.jsonl\n"}})
    assert body.body.records_path == "a.jsonl"
    with pytest.raises(ValidationError):
        StepIn.model_validate({"name": "s", "tool": "t", "output_dataset": "d", "metrics": {"rows\n": {}}})
    with pytest.raises(ValidationError):
        PipelineIn.model_validate(
            {"name": "p", "steps": [{"name": "s", "tool": "t", "output_dataset": "d", "env": {"TOKEN\n": "x"}}]}
        )
    for url in ("https://x/y\n", "/srv/git/ds.git\n", "git@host:repo.git\n"):
        with pytest.raises(InvalidInput):
            check_git_url(url)
    with pytest.raises(InvalidInput, match="invalid branch name"):
        check_branch("gateway-probe\n")
    with pytest.raises(InvalidInput, match="invalid peer URL"):
        add_member(None, "mao-2", "http://203.0.113.10:2380\n")  # type: ignore[arg-type]
