"""DNS rebinding: a request for a name the server does not answer to is a 400 before any route,
in the orchestrator's API and in the executor service; the names it does answer to."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient
from served_kit import Served

from mao.config import Settings, load_settings
from mao.executor.docker import DockerExecutor
from mao.executor.fake import FakeExecutor
from mao.executor.service import create_executor_app
from mao.installer.render import InstallPlan, Secrets, _http_health, render_config
from mao.web.hosts import HostPolicy

TOKEN = "host-check-token-0123456789"
REBOUND = "attacker.example:8080"


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"ok", "error"} and body["ok"] is False
    return body["error"]


def test_a_rebound_name_registers_nothing_and_runs_nothing(make_api) -> None:
    """What a page on attacker.example did once its name resolved to 127.0.0.1: now each a 400."""
    api = make_api()
    attacker = TestClient(api.client.app, base_url=f"http://{REBOUND}", headers={"Origin": f"http://{REBOUND}"})
    for method, path, body in (
        ("POST", "/bare-repo/init", {"name": "obs", "register": True}),
        ("POST", "/registry/datasets", {"name": "ext", "body": {"master": "https://example.org/x.git"}}),
        ("POST", "/registry/tools", {"name": "evil", "image": "img/ok"}),
        ("POST", "/pipeline/init", {"name": "demo", "steps": [{"name": "s", "tool": "evil", "output_dataset": "obs"}]}),
        ("POST", "/pipeline/run", {"name": "demo"}),
        ("GET", "/registry/tools", None),  # reads too: the page would read the answers
        ("GET", "/health", None),
        ("GET", "/ui", None),
    ):
        error = _error(attacker.request(method, path, json=body), 400)
        assert error["code"] == "invalid_host" and "attacker.example" in error["message"], (path, error)
        assert "allowed_hosts" in error["message"]
    assert api.client.get("/registry/tools").json() == {}
    assert api.client.get("/registry/datasets").json() == {}
    assert api.client.get("/pipeline").json() == []
    # a run that did start would be in the store before this one, which is waited for
    api.define()
    run_id = api.client.post("/pipeline/run", json={"name": "demo", "wait": True}).json()["run_id"]
    assert api.client.get(f"/runs/{run_id}").json()["status"] == "succeeded"
    assert [r.id for r in api.instance.store.list_runs(None, None, 10)] == [run_id]
    assert [spec.run_id for spec in api.executor.calls] == [run_id]


@pytest.mark.parametrize(
    "host",
    ["localhost:8080", "LOCALHOST", "127.0.0.1:8080", "127.0.0.1", "127.3.4.5:1", "[::1]:8080", "[::1]"]
    + ["0.0.0.0:8080", "[::]:8080"],  # the seed's curl examples use http://0.0.0.0:8080
)
def test_loopback_names_are_always_served(make_api, monkeypatch, host: str) -> None:
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    api = make_api()
    assert api.client.get("/registry/tools", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["attacker.example", "testserver", "localhost.attacker.example", "127.0.0.1.nip.io", "0.0.0.1:8080"]
)
def test_other_names_are_refused_by_default(make_api, monkeypatch, host: str) -> None:
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    api = make_api()
    assert _error(api.client.get("/registry/tools", headers={"Host": host}), 400)["code"] == "invalid_host"


def test_public_url_bind_address_and_allowed_hosts_are_served(make_api, monkeypatch) -> None:
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    api = make_api(
        api_host="192.0.2.10",
        public_url="https://mao.example.org/",
        allowed_hosts=["orchestrator", "*.lab.example", "[2001:db8::5]"],
    )
    for host in (
        "mao.example.org",
        "192.0.2.10:8080",
        "orchestrator:8080",
        "node-1.lab.example",
        "[2001:db8::5]:8080",
        "localhost:8080",
    ):
        assert api.client.get("/registry/tools", headers={"Host": host}).status_code == 200, host
    for host in ("lab.example", "example.org", "orchestrator.attacker.example", "192.0.2.11"):
        assert api.client.get("/registry/tools", headers={"Host": host}).status_code == 400, host


def test_a_wildcard_bind_still_checks_names_unless_told_any(make_api, monkeypatch) -> None:
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    closed = make_api(api_host="0.0.0.0", api_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert closed.client.get("/registry/tools", headers={**auth, "Host": "attacker.example"}).status_code == 400
    assert closed.client.get("/registry/tools", headers={**auth, "Host": "127.0.0.1:8080"}).status_code == 200
    assert closed.client.get("/registry/tools", headers={**auth, "Host": "0.0.0.0:8080"}).status_code == 200
    anything = make_api(api_host="0.0.0.0", api_token=TOKEN, allowed_hosts=["*"])
    assert anything.client.get("/registry/tools", headers={**auth, "Host": "attacker.example"}).status_code == 200


def test_the_wildcard_bind_without_names_is_logged(make_api, monkeypatch, caplog) -> None:
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    make_api(api_host="0.0.0.0", api_token=TOKEN)
    assert any("allowed_hosts" in r.getMessage() and "0.0.0.0" in r.getMessage() for r in caplog.records)


def test_allowed_hosts_come_from_the_environment_comma_separated(monkeypatch, data_dir: Path) -> None:
    monkeypatch.setenv("MAO_ALLOWED_HOSTS", "Mao.Example.org, [::5] ,*.lan")
    assert Settings(data_dir=data_dir).allowed_hosts == ["mao.example.org", "::5", "*.lan"]
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    assert Settings(data_dir=data_dir).allowed_hosts == []
    for bad in ("http://mao.example.org", "mao.example.org:8080", "a b", "*.*.lan", "mao/x"):
        with pytest.raises(ValueError, match="allowed_hosts"):
            Settings(data_dir=data_dir, allowed_hosts=[bad])


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_served_api_refuses_a_rebound_name_and_serves_http_1_0_without_host(
    data_dir: Path, free_port, monkeypatch
) -> None:
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    settings = Settings(instance_name="sec-node", data_dir=data_dir, api_port=free_port())
    with Served.api(settings) as server:
        refused = httpx.post(
            server.url + "/registry/tools",
            json={"name": "evil", "image": "x"},
            headers={"Host": REBOUND, "Origin": f"http://{REBOUND}"},
        )
        assert _error(refused, 400)["code"] == "invalid_host"
        assert httpx.get(server.url + "/registry/tools").json() == {}
        assert httpx.get(f"http://localhost:{server.port}/registry/tools").status_code == 200
        # HTTP/1.0 without Host (no browser sends that): a client such as nc or busybox
        answer = _raw(server.port, b"GET /registry/tools HTTP/1.0\r\n\r\n")
        assert answer.split(b"\r\n", 1)[0].split()[1] == b"200", answer[:200]


# ---------------------------------------------------------------------------- the executor service


def test_the_executor_service_refuses_other_names(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    app = create_executor_app(FakeExecutor(), token=TOKEN, data_root=tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app, base_url="http://127.0.0.1:8081") as client:
        assert client.get("/steps", headers=auth).status_code == 200
        refused = client.get("/steps", headers={**auth, "Host": "attacker.example:8081"})
        assert _error(refused, 400)["code"] == "invalid_host"
        step = {"run_id": 1, "pipeline": "p", "step": "s", "image": "img", "output_dir": str(tmp_path / "o")}
        assert client.post("/steps", json=step, headers={**auth, "Host": "attacker.example"}).status_code == 400
        assert client.get("/steps", headers=auth).json() == {"steps": []}
        assert client.get("/health", headers={"Host": "attacker.example"}).status_code == 400


def test_maoctl_executor_serve_answers_to_the_host_of_executor_url(maoctl, monkeypatch, tmp_path: Path) -> None:
    """In the compose deployment the orchestrator reaches it as http://executor:8081."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(DockerExecutor, "from_url", staticmethod(lambda *a, **kw: FakeExecutor()))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app))
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    monkeypatch.setenv("MAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MAO_EXECUTOR_URL", "http://executor:8081")
    monkeypatch.setenv("MAO_EXECUTOR_TOKEN", TOKEN)
    result = maoctl("executor", "serve", "--host", "0.0.0.0", "--port", "8081")
    assert result.code == 0, result.output
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(seen["app"]) as client:
        for host in ("executor:8081", "127.0.0.1:8081", "localhost"):
            assert client.get("/steps", headers={**auth, "Host": host}).status_code == 200, host
        assert client.get("/steps", headers={**auth, "Host": "attacker.example:8081"}).status_code == 400


# ---------------------------------------------------------------------------- the compose deployment


def _plan(tmp_path: Path) -> InstallPlan:
    return InstallPlan(
        install_dir=tmp_path / "inst",
        instance_name="node-1",
        public_ip="192.0.2.10",
        git_email="a@example.org",
        ssh_key_dir=tmp_path / "keys",
        monitoring=True,
    )


def test_the_deployment_answers_to_its_service_names_and_nothing_else(tmp_path: Path, monkeypatch) -> None:
    """mao.yaml of the compose deployment: the orchestrator answers to ``orchestrator`` (Prometheus),
    the executor to ``executor`` (the orchestrator's executor_url), both to loopback (healthchecks,
    the published port, maoctl inside the containers)."""
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    config = tmp_path / "mao.yaml"
    config.write_text(yaml.safe_dump(render_config(_plan(tmp_path), Secrets("t" * 40, "p" * 30))))
    settings = load_settings(config)
    orchestrator = HostPolicy.of(bind=settings.api_host, public_url=settings.public_url, allowed=settings.allowed_hosts)
    executor = HostPolicy.of(bind="0.0.0.0", public_url=settings.executor_url, allowed=settings.allowed_hosts)
    for host in ("orchestrator:8080", "127.0.0.1:8080", "localhost:18080"):
        assert orchestrator.allows(host), host
    for host in ("executor:8081", "127.0.0.1:8081"):
        assert executor.allows(host), host
    for policy in (orchestrator, executor):
        assert not policy.allows("attacker.example:8080")
        assert not policy.allows("192.0.2.10:8080")  # the API's port is published on loopback only


def test_the_compose_healthcheck_passes_with_a_token_and_the_host_check(data_dir: Path, free_port, monkeypatch) -> None:
    monkeypatch.delenv("MAO_ALLOWED_HOSTS")
    port = free_port()
    settings = Settings(instance_name="sec-node", data_dir=data_dir, api_port=port, api_token=TOKEN)
    with Served.api(settings):
        command = _http_health(port)["test"]
        assert command[:2] == ["CMD", "python3"]
        probe = subprocess.run([sys.executable, *command[2:]], capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0, probe.stderr
