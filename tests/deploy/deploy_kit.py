"""Helpers of the deployment tests: the engine, locally made images, one compose deployment."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_IMAGE = "local/debian:bookworm"
ORCHESTRATOR_TAG = "mao-test/mao:deploy"
EXECUTOR_TAG = "mao-test/executor:deploy"
ETCD_TAG = "mao-test/etcd:deploy"
POSTGRES_TAG = "mao-test/postgres:deploy"
TOOL_TAG = "mao-test/tool:deploy"
SERVICES = ("orchestrator", "executor", "etcd", "postgres")
DEBIAN_MIRROR = os.environ.get("MAO_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def run_dir() -> Path:
    path = Path(os.environ.get("MAO_RUN_DIR") or ROOT / ".run") / "deploy"
    path.mkdir(parents=True, exist_ok=True)
    return path


def engine_env(docker_host: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAO_", "DOCKER_"))}
    env["DOCKER_HOST"] = docker_host
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def image_exists(env: dict[str, str], tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], env=env, check=False).returncode == 0


def debian_base(env: dict[str, str]) -> str:
    """``local/debian:bookworm`` from a debootstrap'd rootfs, cached as a tarball in the run directory."""
    if image_exists(env, DEBIAN_IMAGE):
        return DEBIAN_IMAGE
    tarball = run_dir() / "debian-bookworm.tar"
    if not tarball.exists():
        rootfs = run_dir() / "rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR], timeout=900)
        partial = tarball.with_suffix(".partial")
        run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], timeout=300)
        partial.rename(tarball)
        shutil.rmtree(rootfs, ignore_errors=True)
    run(["docker", "import", str(tarball), DEBIAN_IMAGE], env=env, timeout=300)
    return DEBIAN_IMAGE


def build_images(env: dict[str, str]) -> None:
    """All four services' images through ``maoctl instance build-images``, and a tool."""
    base = debian_base(env)
    run(
        [
            sys.executable,
            "-m",
            "mao.cli.main",
            "instance",
            "build-images",
            "--source-dir",
            str(ROOT),
            "--base-image",
            base,
            "--orchestrator-tag",
            ORCHESTRATOR_TAG,
            "--executor-tag",
            EXECUTOR_TAG,
            "--service-images",
            "--etcd-tag",
            ETCD_TAG,
            "--postgres-tag",
            POSTGRES_TAG,
            "--wheel-cache",
            str(run_dir() / "wheels"),
        ],
        env=env,
        timeout=900,
    )
    run(
        [
            "docker",
            "build",
            "-q",
            "--network",
            "host",
            "--build-arg",
            f"BASE={base}",
            "-t",
            TOOL_TAG,
            str(ROOT / "src/mao/demo"),
        ],
        env=env,
        timeout=600,
    )


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Forwarder:
    """A TCP relay from ``listen_host:port`` to ``target``: the containers' way to the loopback sshd."""

    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((listen_host, 0))
        self.port = self.server.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self.server.close()


def bridge_gateway(env: dict[str, str]) -> str:
    """The host's address on the engine's default bridge: reachable from containers, not loopback."""
    out = run(["docker", "network", "inspect", "bridge"], env=env, check=False)
    if out.returncode != 0:
        raise LookupError("the engine has no bridge network")
    for config in (json.loads(out.stdout)[0].get("IPAM") or {}).get("Config") or []:
        if config.get("Gateway"):
            return str(ipaddress.ip_address(config["Gateway"]))
    raise LookupError("the engine's bridge network has no gateway address")


@dataclass
class Deployment:
    """One ``maoctl instance install`` directory and its compose project."""

    install_dir: Path
    name: str
    env: dict[str, str]
    api_port: int = field(default_factory=free_port)
    isolated: bool = False
    """Whether the steps' bridge forwards nothing (see the tests' ``isolate_steps``)."""

    @property
    def project(self) -> str:
        return f"maodeploy{self.name.replace('-', '')}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def token(self) -> str:
        for line in (self.install_dir / ".env").read_text().splitlines():
            if line.startswith("MAO_API_TOKEN="):
                return line.split("=", 1)[1]
        raise AssertionError("no MAO_API_TOKEN in .env")

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        return run(
            [*compose_command(), "-p", self.project, "-f", str(self.install_dir / "docker-compose.yaml"), *args],
            env=self.env,
            cwd=self.install_dir,
            timeout=timeout,
            check=check,
        )

    def maoctl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**self.env, "MAO_URL": self.url, "MAO_API_TOKEN": self.token}
        return run([sys.executable, str(ROOT / "maoctl.py"), *args], env=env, check=check, timeout=timeout)

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def wait_healthy(self, timeout: float = 180) -> None:
        """The API answers /health and the engine reports every service healthy."""
        last = ""

        def healthy() -> bool:
            nonlocal last
            response = httpx.get(self.url + "/health", timeout=3)
            health = {service: self.health_of(service) for service in SERVICES}
            last = f"{response.status_code} {health} {response.text}"
            return response.status_code == 200 and set(health.values()) == {"healthy"}

        def unhealthy() -> str:
            logs = self.compose("logs", "--no-color", "--tail", "40", check=False)
            return f"{self.name} to be healthy ({last}):\n{logs.stdout[-6000:]}"

        wait_for(healthy, timeout, unhealthy, 1.0, ignore=(httpx.TransportError,))

    def wait_run(self, run_id: int, timeout: float = 120) -> dict:
        return wait_for(
            lambda: (
                (body := self.api("GET", f"/runs/{run_id}").json())["status"] not in ("pending", "running") and body
            ),
            timeout,
            f"run {run_id} to end",
            0.5,
        )

    def health_of(self, service: str) -> str:
        cid = self.compose("ps", "-q", service).stdout.strip()
        out = run(["docker", "inspect", "-f", "{{.State.Health.Status}}", cid], env=self.env, check=False)
        return out.stdout.strip()

    def destroy(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=180)
