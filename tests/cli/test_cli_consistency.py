"""One listing verb (``list``, with ``get`` kept for the first MAO's scripts), one ``--json``
shape for listings (a JSON list of objects), and ``--url`` errors that name the URL."""

from __future__ import annotations

import json

import httpx
import pytest
from test_cli_registry import assert_one_line_error, unique

from mao.cli.client import APIError, Client


@pytest.mark.parametrize("group", ["tool", "dataset", "pipeline"])
def test_list_is_the_listing_verb_and_get_its_alias(cli, group: str) -> None:
    listed = cli(group, "list", "--json")
    assert listed.code == 0, listed
    assert isinstance(json.loads(listed.out), list)
    assert cli(group, "get", "--json").out == listed.out
    assert cli(group, "list").code == 0


def test_every_listing_prints_a_json_list(cli) -> None:
    tool, dataset = unique("shape"), unique("shape-ds")
    assert cli("tool", "add", "--name", tool, "--image", "busybox").code == 0
    assert cli("dataset", "add", "--name", dataset, "--git_url", "/srv/git/shape.git").code == 0
    tools = json.loads(cli("tool", "list", "--json").out)
    assert {"name": tool, "image": "busybox"}.items() <= next(t for t in tools if t["name"] == tool).items()
    datasets = json.loads(cli("--json", "dataset", "list").out)
    assert next(d for d in datasets if d["name"] == dataset)["master"] == "/srv/git/shape.git"
    for argv in (("runs", "list"), ("tool", "list-scheduled"), ("pipeline", "list")):
        assert isinstance(json.loads(cli(*argv, "--json").out), list), argv
    # one object stays the object
    assert json.loads(cli("tool", "get", "--name", tool, "--json").out)["name"] == tool


@pytest.mark.parametrize("argv", [("runs", "get"), ("marketplace", "get"), ("tool", "ls")])
def test_an_unknown_listing_verb_points_to_list(maoctl, argv) -> None:
    result = maoctl(*argv)
    assert result.code == 2
    assert f"Use 'maoctl {argv[0]} list'" in result.err and "Commands:" in result.err


def test_unknown_command_names_the_commands(maoctl) -> None:
    result = maoctl("runs", "frobnicate")
    assert result.code == 2 and "Commands: cancel, list, logs, show." in result.err


def test_url_without_a_scheme_means_http(maoctl, server) -> None:
    bare = server.url.removeprefix("http://")
    result = maoctl("--url", bare, "tool", "list", "--json")
    assert result.code == 0, result
    assert isinstance(json.loads(result.out), list)


@pytest.mark.parametrize(
    "argv",
    [
        ("runs", "list"),
        ("runs", "show", "1"),
        ("runs", "logs", "1"),
        ("tool", "list"),
        ("pipeline", "list"),
        ("pipeline", "run", "--name", "p"),
        ("federation", "status"),
        ("insights", "list"),
    ],
)
@pytest.mark.parametrize("path", ["/ui", "/ui/", "/ui/runs", "/api"])
def test_url_with_a_path_is_explained_by_every_command(maoctl, server, argv, path) -> None:
    line = assert_one_line_error(maoctl("--url", server.url + path, *argv), f"{server.url}{path}")
    assert f"address alone, {server.url}" in line, line
    assert ("dashboard" in line) == path.startswith("/ui"), line


def test_url_with_a_trailing_slash_is_the_address(maoctl, server) -> None:
    result = maoctl("--url", server.url + "/", "runs", "list", "--json")
    assert result.code == 0, result
    assert isinstance(json.loads(result.out), list)


def test_an_answer_that_is_not_the_apis_json_is_explained() -> None:
    """A server that answers a page (some other web server at that address) is an error naming
    the URL, not a crash of the command reading the answer."""
    client = Client("http://127.0.0.1:9")
    client._http = httpx.Client(
        base_url=client.base_url,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, html="<html>dashboard</html>")),
    )
    with pytest.raises(APIError) as info:
        client.get("/runs")
    assert "text/html" in info.value.message and "http://127.0.0.1:9/runs" in info.value.message
    assert "--url" in info.value.message


def test_url_of_another_scheme_is_refused(maoctl) -> None:
    line = assert_one_line_error(maoctl("--url", "ftp://127.0.0.1:1", "tool", "list"))
    assert "ftp://127.0.0.1:1" in line and "http://" in line, line
