"""``maoctl tool`` / ``maoctl dataset`` against a real API server, and the CLI's error handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GIT_URL = "https://github.com/mao-mao-research/hub-data.git"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_one_line_error(result, *needles: str) -> str:
    """Checks a failed command printed one ``Error:`` line holding ``needles``; returns that line."""
    assert result.code != 0, result
    assert "Traceback" not in result.output
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("Error:"), result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def names(result) -> list[str]:
    """The names in a listing's ``--json``: a JSON list of objects."""
    listing = json.loads(result.out)
    assert isinstance(listing, list), listing
    return [item["name"] for item in listing]


# ------------------------------------------------------------------------ tools


def test_tool_add_get_remove_with_the_seed_flags(cli) -> None:
    name = unique("collector")
    added = cli(
        "tool",
        "add",
        "--name",
        name,
        "--author",
        "Alice Example",
        "--image",
        "mao/collector:1.0",
        "--data_repo",
        "git@github.com:org/data.git",
        "--code_repo",
        "https://github.com/org/collector",
        "--artefact",
        "docker-images",
        "--description",
        "Collects things",
    )
    assert added.code == 0, added
    assert name in added.out

    listed = cli("tool", "get")
    assert listed.code == 0 and name in listed.out and "mao/collector:1.0" in listed.out

    one = cli("--json", "tool", "get", "--name", name)
    assert one.code == 0, one
    assert json.loads(one.out) == {
        "name": name,
        "author": "Alice Example",
        "image": "mao/collector:1.0",
        "data_repo": "git@github.com:org/data.git",
        "code_repo": "https://github.com/org/collector",
        "artefact": "docker-images",
        "description": "Collects things",
    }
    shown = cli("tool", "get", "--name", name)
    assert shown.code == 0 and "Alice Example" in shown.out

    removed = cli("tool", "remove", "--name", name)
    assert removed.code == 0, removed
    assert name not in names(cli("tool", "get", "--json"))
    assert_one_line_error(cli("tool", "get", "--name", name), name)


def test_tool_add_hyphenated_aliases(cli) -> None:
    name = unique("aliased")
    result = cli(
        "tool",
        "add",
        "--name",
        name,
        "--image",
        "busybox",
        "--data-repo",
        "/srv/git/data.git",
        "--code-repo",
        "https://example.org/code.git",
    )
    assert result.code == 0, result
    tool = json.loads(cli("tool", "get", "--name", name, "--json").out)
    assert (tool["data_repo"], tool["code_repo"]) == ("/srv/git/data.git", "https://example.org/code.git")


def test_json_output_of_add_and_remove(cli) -> None:
    name = unique("json")
    added = cli("--json", "tool", "add", "--name", name, "--image", "busybox")
    assert json.loads(added.out)["ok"] is True
    removed = cli("tool", "remove", "--name", name, "--json")
    assert json.loads(removed.out) == {"ok": True, "name": name}


def test_duplicate_tool_is_a_one_line_error(cli) -> None:
    name = unique("dup")
    assert cli("tool", "add", "--name", name, "--image", "busybox").code == 0
    assert_one_line_error(cli("tool", "add", "--name", name, "--image", "other"), name, "already registered")
    assert json.loads(cli("tool", "get", "--name", name, "--json").out)["image"] == "busybox"


@pytest.mark.parametrize("bad", ["bad name", "[/x]", "[bold]x", "$(rm)", "x" * 65])
def test_bad_tool_name_is_a_one_line_error(cli, bad: str) -> None:
    before = cli("tool", "get", "--json").out
    result = cli("tool", "add", "--name", bad, "--image", "busybox")
    assert_one_line_error(result, bad)
    assert cli("tool", "get", "--json").out == before


def test_unknown_tool_remove_is_a_one_line_error(cli) -> None:
    before = cli("tool", "list", "--json").out
    line = assert_one_line_error(cli("tool", "remove", "--name", "never-registered"))
    assert line == "Error: tool 'never-registered' is not registered"
    assert cli("tool", "list", "--json").out == before


@pytest.mark.parametrize(
    "argv",
    [
        ("tool", "remove", "--name", "../datasets/{victim}"),
        ("tool", "get", "--name", "../datasets/{victim}"),
        ("dataset", "remove", "--name", "../datasets/{victim}"),
        ("dataset", "remove", "--name", "x/../{victim}"),
        ("dataset", "get", "--name", "a/b"),
        ("tool", "remove", "--name", "bad name"),
    ],
)
def test_names_cannot_reach_other_endpoints(cli, argv) -> None:
    victim = unique("victim")
    assert cli("dataset", "add", "--name", victim, "--git_url", "/srv/git/v.git").code == 0
    result = cli(*(a.format(victim=victim) for a in argv))
    assert_one_line_error(result, "name")
    assert victim in names(cli("dataset", "get", "--json"))


def test_client_refuses_dot_segments(server) -> None:
    from mao.cli.client import Client
    from mao.errors import InvalidInput

    client = Client(server.url)
    try:
        for path in ("/registry/tools/../datasets/x", "/registry/./tools", "/registry/tools/..?x=1"):
            with pytest.raises(InvalidInput):
                client.delete(path)
        assert isinstance(client.get("/registry/tools?x=a/../b"), dict)  # dots in a query are fine
    finally:
        client.close()


def test_missing_required_option_is_a_usage_error(cli) -> None:
    result = cli("tool", "add", "--name", "x")
    assert result.code == 2
    assert "--image" in result.err and "Traceback" not in result.output


# ------------------------------------------------------------------------ datasets


def test_dataset_add_get_remove(cli) -> None:
    name = unique("hub-data")
    added = cli("dataset", "add", "--name", name, "--git_url", GIT_URL)
    assert added.code == 0, added

    listed = cli("dataset", "get")
    assert listed.code == 0 and name in listed.out
    listed_json = {d["name"]: d for d in json.loads(cli("dataset", "list", "--json").out)}
    assert listed_json[name] == {
        "name": name,
        "master": GIT_URL,
        "nodes": [],
        "policy": "merge",
        "vote_deadline": 600,
    }
    one = json.loads(cli("dataset", "get", "--name", name, "--json").out)
    assert one == {"name": name, "master": GIT_URL, "nodes": [], "policy": "merge", "vote_deadline": 600}
    shown = cli("dataset", "get", "--name", name)
    assert shown.code == 0 and GIT_URL in shown.out

    assert cli("dataset", "remove", "--name", name).code == 0
    assert name not in names(cli("dataset", "get", "--json"))
    assert_one_line_error(cli("dataset", "get", "--name", name), name)
    assert_one_line_error(cli("dataset", "remove", "--name", name), name)


def test_dataset_add_hyphenated_alias_and_duplicate(cli) -> None:
    name = unique("ds")
    assert cli("dataset", "add", "--name", name, "--git-url", "/srv/git/ds.git").code == 0
    assert_one_line_error(cli("dataset", "add", "--name", name, "--git_url", GIT_URL), "already registered")


@pytest.mark.parametrize("url", ["not a url", "ftp://x", "http://x/../y", "`id`"])
def test_dataset_with_a_bad_git_url(cli, url: str) -> None:
    name = unique("bad-url")
    assert_one_line_error(cli("dataset", "add", "--name", name, "--git_url", url))
    assert name not in names(cli("dataset", "get", "--json"))


# ------------------------------------------------------------------------ where the server is


def test_mao_url_environment(maoctl, server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAO_URL", server.url)
    assert maoctl("tool", "get", "--json").code == 0


def test_url_option_beats_mao_url(maoctl, server, monkeypatch: pytest.MonkeyPatch, free_port) -> None:
    monkeypatch.setenv("MAO_URL", f"http://127.0.0.1:{free_port()}")
    assert maoctl("--url", server.url, "tool", "get", "--json").code == 0


def test_server_not_running(maoctl, free_port, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = assert_one_line_error(maoctl("--url", url, "tool", "get"))
    assert url in line and "MAO_URL" in line, line
    monkeypatch.setenv("MAO_URL", url)
    line = assert_one_line_error(maoctl("dataset", "add", "--name", "d", "--git_url", GIT_URL))
    assert url in line, line


def test_unsupported_url_is_a_one_line_error(maoctl) -> None:
    line = assert_one_line_error(maoctl("--url", "ftp://127.0.0.1:1", "tool", "get"))
    assert "ftp://127.0.0.1:1" in line and "http" in line, line  # names the URL and what would do


def test_token(maoctl, token_server, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_one_line_error(maoctl("--url", token_server.url, "tool", "get"), "token")
    assert_one_line_error(maoctl("--url", token_server.url, "--token", "wrong", "tool", "get"), "token")
    assert maoctl("--url", token_server.url, "--token", "cli-s3cret", "tool", "get", "--json").code == 0
    monkeypatch.setenv("MAO_API_TOKEN", "cli-s3cret")
    assert maoctl("--url", token_server.url, "tool", "add", "--name", "t", "--image", "busybox").code == 0


# ------------------------------------------------------------------------ entry points


def test_help_and_version(maoctl) -> None:
    result = maoctl("--help")
    assert result.code == 0
    for command in ("tool", "dataset", "serve"):
        assert command in result.out
    tool_help = maoctl("tool", "add", "--help")
    assert tool_help.code == 0
    for flag in ("--name", "--author", "--image", "--data_repo", "--code_repo", "--artefact"):
        assert flag in tool_help.out
    assert "--git_url" in maoctl("dataset", "add", "--help").out
    version = maoctl("--version")
    assert version.code == 0 and version.out.startswith("maoctl ")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_")}
    env.update(extra)
    return env


def test_maoctl_py_shim_from_the_repo_root(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "maoctl.py", "--help"],
        check=False,
        cwd=REPO,
        env=_clean_env(HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "tool" in result.stdout and "dataset" in result.stdout


def test_shim_reports_errors_without_a_traceback(tmp_path: Path, free_port) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "maoctl.py", "--url", url, "tool", "get"],
        check=False,
        cwd=REPO,
        env=_clean_env(HOME=str(tmp_path), COLUMNS="60"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and url in result.stderr


@pytest.mark.parametrize(("host", "token"), [("0.0.0.0", " "), ("192.0.2.10", "x"), ("::", "fifteen-chars-x")])
def test_serve_refuses_a_public_host_with_a_weak_token(tmp_path: Path, free_port, host: str, token: str) -> None:
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "maoctl.py", "serve", "--host", host, "--port", str(free_port()), "--data-dir", str(data)],
        check=False,
        cwd=REPO,
        env=_clean_env(HOME=str(tmp_path), MAO_API_TOKEN=token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MAO_API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert not data.exists()
