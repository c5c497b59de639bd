"""Helpers of the dashboard's tests."""

from __future__ import annotations

from fastapi.testclient import TestClient

ORIGIN = "http://testserver"
TOKEN = "ui-test-token-7f3a9c"


def define(client: TestClient, headers: dict[str, str] | None = None) -> None:
    """Tools, local datasets and two pipelines, through the API."""
    h = headers or {}
    for tool, image in (("ok-tool", "img/ok"), ("gated-tool", "img/gated")):
        client.post("/registry/tools", json={"name": tool, "image": image}, headers=h).raise_for_status()
    for name in ("observations", "waits"):
        client.post("/bare-repo/init", json={"name": name, "register": True}, headers=h).raise_for_status()
    for pipeline, tool, dataset in (("demo", "ok-tool", "observations"), ("slow", "gated-tool", "waits")):
        body = {"name": pipeline, "steps": [{"name": f"{pipeline}-step", "tool": tool, "output_dataset": dataset}]}
        client.post("/pipeline/init", json=body, headers=h).raise_for_status()
