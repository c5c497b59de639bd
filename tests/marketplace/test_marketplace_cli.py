"""``maoctl marketplace list`` and ``maoctl marketplace serve``."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
from catalogue_kit import FEDERATIONS, PIPELINES, TOOLS, run_maoctl, write_catalogue


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("federations", ["mao-mao-research", "mao-sandbox", "https://mao-mao-research.github.io/"]),
        ("tools", ["dockerhub-collector", "artifacthub-collector", "demo-tool", "mao/demo-tool:local"]),
        (
            "pipelines",
            ["dockerhub-collector", "artifacthub-collector", "demo", "collect → analyse", "ARTIFACTHUB_API_KEY"],
        ),
    ],
)
def test_list_builtin_tables(kind: str, expected: list[str]):
    code, out, err = run_maoctl(["marketplace", "list", kind, "--marketplace-url", "builtin"])
    assert code == 0, err
    for text in expected:
        assert text in out


def test_list_json_from_a_directory(catalogue: Path):
    code, out, _ = run_maoctl(["marketplace", "list", "tools", "--marketplace-url", str(catalogue), "--json"])
    assert code == 0 and json.loads(out) == TOOLS
    code, out, _ = run_maoctl(["--json", "marketplace", "list", "federations", "--marketplace-url", catalogue.as_uri()])
    assert code == 0 and [f["name"] for f in json.loads(out)] == [f["name"] for f in FEDERATIONS]
    code, out, _ = run_maoctl(["marketplace", "list", "pipelines", "--marketplace-url", str(catalogue), "--json"])
    pipelines = json.loads(out)
    assert code == 0 and pipelines[0]["name"] == PIPELINES[0]["name"]
    assert pipelines[0]["steps"][0]["env"] == {"TOKEN": "{{ TOKEN }}", "MODE": "full"}


def test_url_from_environment_and_config(catalogue: Path, tmp_path: Path):
    code, out, _ = run_maoctl(["marketplace", "list", "tools", "--json"], env={"MAO_MARKETPLACE_URL": str(catalogue)})
    assert code == 0 and json.loads(out) == TOOLS
    config = tmp_path / "mao.yaml"
    config.write_text(f"marketplace_url: {catalogue.as_uri()}\n")
    code, out, _ = run_maoctl(["--config", str(config), "marketplace", "list", "tools", "--json"])
    assert code == 0 and json.loads(out) == TOOLS
    # the option beats the config file
    code, out, _ = run_maoctl(
        ["--config", str(config), "marketplace", "list", "tools", "--json", "--marketplace-url", "builtin"]
    )
    assert code == 0 and "demo-tool" in {t["name"] for t in json.loads(out)}


def test_catalogue_text_is_not_markup(tmp_path: Path):
    directory = write_catalogue(tmp_path / "c", tools=[{**TOOLS[0], "description": "[red]loud[/red] [/oops]"}])
    code, out, err = run_maoctl(["marketplace", "list", "tools", "--marketplace-url", str(directory)])
    assert code == 0, err
    assert "[red]loud[/red] [/oops]" in out


def test_errors_are_one_line_messages(tmp_path: Path, free_port):
    code, out, err = run_maoctl(["marketplace", "list", "tools", "--marketplace-url", str(tmp_path / "absent")])
    assert code == 1 and "Error: marketplace" in err and "no such directory" in err and "Traceback" not in err + out

    broken = write_catalogue(tmp_path / "broken", pipelines='{"pipelines": [')
    code, out, err = run_maoctl(["marketplace", "list", "pipelines", "--marketplace-url", str(broken)])
    assert code == 1 and "pipelines.json: malformed JSON" in err

    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run_maoctl(["marketplace", "list", "federations", "--marketplace-url", url])
    assert code == 1 and f"{url}/federations.json: cannot be reached" in err

    code, out, err = run_maoctl(["marketplace", "list", "datasets", "--marketplace-url", "builtin"])
    assert code == 2


def test_serve_refuses_what_is_not_a_catalogue(tmp_path: Path):
    code, _, err = run_maoctl(["marketplace", "serve", str(tmp_path / "absent")])
    assert code == 1 and "is not a directory" in err

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "tools.json").write_text("[]")
    code, _, err = run_maoctl(["marketplace", "serve", str(partial)])
    assert code == 1 and "has no federations.json, pipelines.json" in err

    invalid = write_catalogue(tmp_path / "invalid", federations=[{"name": "f", "operator": "o", "contact": "nope"}])
    code, _, err = run_maoctl(["marketplace", "serve", str(invalid)])
    assert code == 1 and "federations.json" in err and "contact" in err


def test_serve_reports_a_busy_port(catalogue: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, _, err = run_maoctl(["marketplace", "serve", str(catalogue), "--port", str(port)])
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_serve_serves_only_the_catalogue(catalogue: Path, serve_catalogue):
    (catalogue / "secret.txt").write_text("not for you")
    url = serve_catalogue(catalogue)
    index = httpx.get(url + "/")
    assert index.status_code == 200 and set(index.json()) == {"federations", "tools", "pipelines"}
    response = httpx.get(url + "/tools.json")
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == TOOLS
    assert httpx.head(url + "/pipelines.json").status_code == 200
    for path in ("/secret.txt", "/../tools.json/../secret.txt", "/%2e%2e/etc/passwd"):
        missing = httpx.get(url + path)
        assert missing.status_code == 404 and missing.json()["ok"] is False
