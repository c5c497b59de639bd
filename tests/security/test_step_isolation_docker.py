"""A step's container against the orchestrator API and the executor service, on the real
Docker Engine: on the default (bridge) network it cannot reach them at all (connection
refused); with host networking it reaches them but gets a 401. The tokens are kept in
files only the instance's user reads, the local maoctl finds the API token by itself,
and no token is in a step's environment.

Everything runs as it would on an instance: `maoctl executor serve` and `maoctl serve`
as processes sharing one data directory, `maoctl` commands without ``--token``, and the
probe run as a real pipeline step whose results are read back from the dataset's git remote.

- ``MAO_TEST_DOCKER_HOST``: a Docker Engine with a bridge network (scripts/services.sh).
- ``MAO_TEST_IMAGE``: the busybox image with ``nc`` (default ``mao/busybox:local``).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
import httpx
import pytest
from waiting import SERVE_START, wait_for

import docker

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
probe() {
  # stdin stays open a while: a server may drop a request whose client half-closed at once
  { printf "$2"; sleep 2; } | nc -w 5 127.0.0.1 "$1" >/tmp/answer 2>/tmp/error
  echo "$3 rc=$? $(head -n 1 /tmp/answer | tr -d '\r') $(cat /tmp/error)"
}
fetch() {  # busybox wget (its -T crashes: timeout instead)
  timeout 10 wget -q -O /tmp/answer "$@" 2>/tmp/error
  echo "rc=$? $(cat /tmp/error)"
}
body='{"run_id": 1, "pipeline": "p", "step": "s", "image": "mao/busybox:local", "output_dir": "/root/.ssh"}'
out=/usr/src/app/data
echo "api-wget $(fetch "http://127.0.0.1:$API_PORT/registry/tools")" >"$out/probe.txt"
echo "executor-wget $(fetch --header 'Content-Type: application/json' --post-data "$body" \
  "http://127.0.0.1:$EXECUTOR_PORT/steps")" >>"$out/probe.txt"
probe "$API_PORT" 'GET /registry/tools HTTP/1.0\r\nHost: localhost\r\n\r\n' api-nc >>"$out/probe.txt"
probe "$EXECUTOR_PORT" "POST /steps HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${#body}\r\n\r\n$body" executor-nc >>"$out/probe.txt"
env | sort >"$out/env.txt"
cat "$out/probe.txt"
"""


def _missing(reason: str) -> None:
    if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    url = os.environ.get("MAO_TEST_DOCKER_HOST")
    if not url:
        _missing("MAO_TEST_DOCKER_HOST is not set")
    image = os.environ.get("MAO_TEST_IMAGE") or "mao/busybox:local"
    client = docker.DockerClient(base_url=url, timeout=30)
    try:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            _missing(f"image {image} is not on the engine (see scripts/services.sh)")
        try:
            client.networks.get("bridge")
        except docker.errors.NotFound:
            _missing(f"the engine at {url} has no bridge network: start it with scripts/services.sh")
        yield url
    finally:
        client.close()


@dataclass
class Instance:
    """`maoctl executor serve` and `maoctl serve` on one data directory."""

    root: Path
    docker_host: str
    network_mode: str
    free_port: object
    name: str = field(default_factory=lambda: f"sec-{uuid.uuid4().hex[:8]}")
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = self.root / "data"
        self.api_port, self.executor_port = self.free_port(), self.free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.executor_url = f"http://127.0.0.1:{self.executor_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k.startswith("MAO_TEST_")}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "MAO_DATA_DIR": str(self.data_dir),
                "MAO_INSTANCE_NAME": self.name,
                "MAO_URL": self.url,
                "MAO_API_PORT": str(self.api_port),
                "MAO_DOCKER_HOST": self.docker_host,
                "MAO_NETWORK_MODE": self.network_mode,
                "MAO_EXECUTOR_URL": self.executor_url,
                "MAO_PULL_POLICY": "never",
                "MAO_PUSH_RETRIES": "0",
            }
        )
        return env

    def _start(self, args: list[str], health: str, log: str) -> None:
        with (self.root / log).open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mao.cli.main", *args],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)

        def answered() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"maoctl {args[0]} exited: {(self.root / log).read_text()}")
            return httpx.get(health + "/health", timeout=1).status_code == 200

        wait_for(
            answered,
            SERVE_START,
            lambda: f"maoctl {args[0]} to answer /health: {(self.root / log).read_text()}",
            0.1,
            ignore=(httpx.TransportError,),
        )

    def start(self) -> Instance:
        self.data_dir.mkdir(parents=True)
        self._start(
            ["executor", "serve", "--port", str(self.executor_port), "--log-level", "warning"],
            self.executor_url,
            "executor.log",
        )
        self._start(["serve", "--log-level", "warning"], self.url, "serve.log")
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    def maoctl(self, *args: str) -> subprocess.CompletedProcess:
        """`maoctl` as this instance's user would run it: no --token, no MAO_API_TOKEN."""
        result = subprocess.run(
            [sys.executable, str(ROOT / "maoctl.py"), *args],
            check=False,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"maoctl {' '.join(args)}: {result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(params=["bridge", "host"])
def instance(request: pytest.FixtureRequest, engine: str, tmp_path: Path, free_port) -> Iterator[Instance]:
    inst = Instance(tmp_path, engine, request.param, free_port)
    try:
        yield inst.start()
    finally:
        inst.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run_probe(inst: Instance, tmp_path: Path) -> tuple[dict, str, str]:
    inst.maoctl("tool", "add", "--name", "probe", "--image", os.environ.get("MAO_TEST_IMAGE") or "mao/busybox:local")
    inst.maoctl("repo", "add", "--name", "probes", "--register")
    definition = {
        "name": "isolation",
        "steps": [
            {
                "name": "probe",
                "tool": "probe",
                "output_dataset": "probes",
                "cmd": ["sh", "-c", PROBE],
                "env": {"API_PORT": str(inst.api_port), "EXECUTOR_PORT": str(inst.executor_port)},
            }
        ],
    }
    (tmp_path / "pipeline.json").write_text(json.dumps(definition))
    inst.maoctl("pipeline", "add", "--file", str(tmp_path / "pipeline.json"))
    run_id = json.loads(inst.maoctl("--json", "pipeline", "run", "--name", "isolation").stdout)["run_id"]
    run = wait_for(
        lambda: (
            (r := json.loads(inst.maoctl("--json", "runs", "show", str(run_id)).stdout))["status"]
            not in ("pending", "running")
            and r
        ),
        90,
        f"run {run_id} to end",
        0.3,
    )
    repo = inst.data_dir / "repos" / "probes.git"
    branch = f"probe-{inst.name}"

    def show(path: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(repo), "show", f"{branch}:{path}"], check=True, capture_output=True, text=True
        ).stdout

    return run, show("probe.txt"), show("env.txt")


def test_a_step_cannot_drive_the_orchestrator_or_the_executor(instance: Instance, tmp_path: Path) -> None:
    executor_token_file = instance.data_dir / "executor-token"
    api_token_file = instance.data_dir / "api-token"
    # the executor service always has a token, private to the instance's user
    assert _mode(executor_token_file) == 0o600
    executor_token = executor_token_file.read_text().strip()
    assert httpx.get(instance.executor_url + "/steps").status_code == 401
    if instance.network_mode == "host":
        # steps can reach the API: it needs a token, generated and private
        assert _mode(api_token_file) == 0o600
        api_token = api_token_file.read_text().strip()
        assert httpx.get(instance.url + "/registry/tools").status_code == 401
        headers = {"Authorization": f"Bearer {api_token}"}
        assert httpx.get(instance.url + "/registry/tools", headers=headers).status_code == 200
    else:
        assert not api_token_file.exists()
        api_token = None

    run, probe, env = _run_probe(instance, tmp_path)  # maoctl found the token by itself
    assert run["status"] == "succeeded", run
    lines = dict(line.split(" ", 1) for line in probe.strip().splitlines())
    assert set(lines) == {"api-wget", "executor-wget", "api-nc", "executor-nc"}, probe
    for target, answer in lines.items():
        if instance.network_mode == "bridge":
            assert "refused" in answer.lower() and "HTTP/" not in answer, (target, answer)
        else:
            assert "HTTP/1.1 401" in answer, (target, answer)
    (tmp_path / f"probe-{instance.network_mode}.txt").write_text(probe)

    assert executor_token not in env and "MAO_API_TOKEN" not in env and "MAO_EXECUTOR_TOKEN" not in env
    if api_token is not None:
        assert api_token not in env
    assert f"API_PORT={instance.api_port}" in env  # the step's own env is there
