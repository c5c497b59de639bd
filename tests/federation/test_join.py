"""A real join on one machine: instance A on its own etcd, the operator adds B, B joins.

Both orchestrators are `maoctl serve` processes; both etcd members are real etcd
processes on loopback, B started with exactly the values `member add` printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fedkit import UNREACHABLE
from waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.etcd, pytest.mark.slow]


def _etcd_bin() -> str:
    found = os.environ.get("MAO_TEST_ETCD_BIN") or shutil.which("etcd")
    if not found:
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("etcd is not installed (MAO_TEST_REQUIRE_SERVICES=1)")
        pytest.skip("etcd is not installed")
    return found


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Procs:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def procs(tmp_path: Path):
    p = Procs(tmp_path)
    yield p
    p.stop()


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MAO_", "ETCD_"))}


def _serve(procs: Procs, tmp: Path, name: str, port: int, etcd_client: int) -> str:
    env = {
        **_base_env(),
        "MAO_INSTANCE_NAME": name,
        "MAO_DATA_DIR": str(tmp / name),
        "MAO_API_PORT": str(port),
        "MAO_REGISTRY_BACKEND": "etcd",
        "MAO_ETCD_ENDPOINTS": f"http://127.0.0.1:{etcd_client}",
        "MAO_INSTANCE_TTL": "10",
    }
    procs.start(name, [sys.executable, "-m", "mao.cli.main", "serve", "--log-level", "warning"], env)
    url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: httpx.get(url + "/health", timeout=2).status_code == 200,
        30,
        f"{name} to serve",
        ignore=UNREACHABLE,
    )
    return url


def _maoctl(url: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(ROOT / "maoctl.py"), "--url", url, *args],
        env=_base_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_operator_adds_member_and_new_instance_joins(procs: Procs, tmp_path: Path):
    etcd = _etcd_bin()
    a_client, a_peer, b_client, b_peer, a_api, b_api = _ports(6)

    # instance A: a new federation of one
    procs.start(
        "etcd-a",
        [
            etcd,
            "--name",
            "inst-a",
            "--data-dir",
            str(tmp_path / "etcd-a"),
            "--listen-client-urls",
            f"http://127.0.0.1:{a_client}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{a_client}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{a_peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{a_peer}",
            "--initial-cluster",
            f"inst-a=http://127.0.0.1:{a_peer}",
            "--initial-cluster-state",
            "new",
        ],
        _base_env(),
    )
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{a_client}/health", timeout=2).json().get("health") == "true",
        30,
        "etcd A",
        ignore=UNREACHABLE,
    )
    a = _serve(procs, tmp_path, "inst-a", a_api, a_client)
    _maoctl(a, "tool", "add", "--name", "collector", "--image", "mao/demo-tool:local", "--author", "A")

    # the operator adds B; B gets the printed values
    added = json.loads(
        _maoctl(a, "federation", "member", "add", "inst-b", "--peer-url", f"http://127.0.0.1:{b_peer}", "--json").stdout
    )
    handed_over = added["env"]
    assert handed_over["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    assert sorted(handed_over["ETCD_INITIAL_CLUSTER"].split(",")) == [
        f"inst-a=http://127.0.0.1:{a_peer}",
        f"inst-b=http://127.0.0.1:{b_peer}",
    ]
    human = _maoctl(a, "federation", "member", "add", "--help").stdout
    assert "--peer-url" in human
    listed = json.loads(_maoctl(a, "federation", "member", "list", "--json").stdout)
    assert sorted(m["status"] for m in listed) == ["started", "unstarted"]

    # B starts etcd with exactly those values, then its orchestrator
    procs.start(
        "etcd-b",
        [
            etcd,
            "--data-dir",
            str(tmp_path / "etcd-b"),
            "--listen-client-urls",
            f"http://127.0.0.1:{b_client}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{b_client}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{b_peer}",
        ],
        {**_base_env(), **handed_over},
    )
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{b_client}/health", timeout=2).json().get("health") == "true",
        60,
        "etcd B",
        ignore=UNREACHABLE,
    )
    b = _serve(procs, tmp_path, "inst-b", b_api, b_client)
    b_proc = procs.procs[-1]

    # both see the same registry
    assert httpx.get(f"{b}/registry/tools").json()["collector"]["author"] == "A"
    _maoctl(b, "dataset", "add", "--name", "shared", "--git_url", "ssh://git@git.example.org/mao/shared.git")
    assert httpx.get(f"{a}/registry/datasets/shared").json()["master"].endswith("shared.git")
    httpx.post(f"{a}/pipeline/init", json={"tool": "collector", "dataset": "shared"}).raise_for_status()
    assert httpx.get(f"{b}/registry/pipelines/collector-shared").json()["steps"][0]["tool"] == "collector"

    def both_alive(url: str):
        status = json.loads(_maoctl(url, "federation", "status", "--json").stdout)
        return sorted(i["name"] for i in status["instances"]) == ["inst-a", "inst-b"] and status

    status_a = wait_for(lambda: both_alive(a), 30, "A to see both instances", ignore=UNREACHABLE)
    wait_for(lambda: both_alive(b), 30, "B to see both instances", ignore=UNREACHABLE)
    assert sorted(m["status"] for m in status_a["members"]) == ["started", "started"]
    table = _maoctl(a, "federation", "status").stdout
    assert "inst-a" in table and "inst-b" in table

    # an instance that dies stops being listed once its lease runs out
    b_proc.send_signal(signal.SIGKILL)
    b_proc.wait(10)

    def only_a():
        status = json.loads(_maoctl(a, "federation", "status", "--json").stdout)
        return [i["name"] for i in status["instances"]] == ["inst-a"]

    wait_for(only_a, 30, "B's record to expire", ignore=UNREACHABLE)
