"""The README's curl examples answer 2xx as written right after ``scripts/demo``."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from fastapi.testclient import TestClient

README = Path(__file__).resolve().parents[2] / "README.md"


def _curl_commands() -> list[list[str]]:
    text = README.read_text()
    section = text[text.index("### The seed's HTTP API") :]
    block = section[section.index("```sh") + 5 : section.index("```", section.index("```sh") + 5)]
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]
    assert commands and all(c[0] == "curl" for c in commands), commands
    return commands


def _replay(client: TestClient, argv: list[str]):
    method, body, url, headers = "GET", None, None, {}
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-d":
            body = next(args)
        elif arg == "-H":
            key, value = next(args).split(":", 1)
            headers[key.strip()] = value.strip()
        else:
            url = arg
    assert url and url.startswith("http://127.0.0.1:8080/"), url
    if body is not None:
        json.loads(body)  # valid JSON as written
        method = "POST" if method == "GET" else method
    return client.request(method, url.removeprefix("http://127.0.0.1:8080"), content=body, headers=headers)


def test_readme_curl_examples_work_after_the_demo(fake_client: TestClient) -> None:
    client = fake_client
    # what scripts/demo leaves: its tool, two local datasets, its pipeline
    assert client.post("/registry/tools", json={"name": "demo-tool", "image": "img/ok"}).status_code == 200
    for name in ("observations", "insights"):
        assert client.post("/bare-repo/init", json={"name": name, "register": True}).status_code == 200
    step = {"name": "collect", "tool": "demo-tool", "output_dataset": "observations"}
    assert client.post("/pipeline/init", json={"name": "demo", "steps": [step]}).status_code == 200
    for argv in _curl_commands():
        response = _replay(client, argv)
        assert response.status_code == 200, (argv, response.text)
    assert "collector-notes" in [p["name"] for p in client.get("/pipeline").json()]
