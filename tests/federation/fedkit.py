"""A federation on one machine: a real etcd cluster, `maoctl serve` processes and one shared git remote.

Each instance reaches every etcd member through a TCP proxy of its own, so a test can cut one
instance off etcd (and give it back) without touching the cluster or the other instances.
Steps run on the real Docker Engine (``network_mode: none``). Everything is registered and run
through the HTTP API, as an operator would.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from waiting import SERVE_START, wait_for

ACTIVE = ("pending", "running")
ROOT_MAOCTL = str(Path(__file__).resolve().parents[2] / "maoctl.py")
GROUND_TRUTH = "ground-truth"
UNREACHABLE = (httpx.HTTPError, OSError)
"""What polling an instance may meet while it starts, stops or is cut off: "not yet" to ``wait_for``."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------ a TCP proxy that can be cut


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port. ``cut()`` closes the listener and every
    connection (new connections are refused); ``restore()`` listens on the same port again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open(self) -> bool:
        return self._server is not None

    def start(self) -> TcpProxy:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(128)
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), name=f"proxy-{self.port}", daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while self._server is server:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()  # the member is down: the connection is dropped, as by a dead host
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)

    def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        if self._server is None:
            self.start()

    close = cut


# ------------------------------------------------------------------------ one instance


@dataclass
class Node:
    """One `maoctl serve` process: its own data directory, port, instance name and etcd proxies."""

    name: str
    root: Path
    settings: dict[str, Any]
    proxies: list[TcpProxy]
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.root / "serve.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = {
            **self.settings,
            "instance_name": self.name,
            "data_dir": str(self.data_dir),
            "api_port": self.port,
            "api_token": self.token,
            "etcd_endpoints": [p.url for p in self.proxies],
        }
        self.config_path.write_text(yaml.safe_dump(config))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k.startswith("MAO_TEST_")}
        env.update({"MAO_CONFIG": str(self.config_path), "MAO_URL": self.url, "MAO_API_TOKEN": self.token})
        return env

    def launch(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.write_config()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mao.cli.main",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--log-level",
                    "info",
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: signals reach exactly this instance
            )

    def wait_up(self, timeout: float = SERVE_START) -> None:
        """Until the API answers (healthy or not: an instance cut off from etcd still serves)."""

        def answered() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                return self.health()[1]["checks"]["store"]["ok"]
            except (httpx.HTTPError, KeyError, ValueError):
                return False

        wait_for(answered, timeout, f"{self.name} to answer /health", ignore=UNREACHABLE)

    def start(self, timeout: float = SERVE_START) -> Node:
        self.launch()
        self.wait_up(timeout)
        return self

    def signal(self, sig: int) -> None:
        if self.running:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: the instance dies mid-whatever, as in a crash."""
        if self.running:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, timeout: float = SERVE_START) -> Node:
        self.stop()
        return self.start(timeout)

    # etcd reachability -------------------------------------------------------------

    def cut_off(self) -> None:
        """This instance can no longer reach any etcd member (connections refused)."""
        for proxy in self.proxies:
            proxy.cut()

    def reconnect(self) -> None:
        for proxy in self.proxies:
            proxy.restore()

    # HTTP ---------------------------------------------------------------------------

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout)

    def request(self, method: str, path: str, expect: int | None = 200, **kwargs: Any) -> Any:
        with self.client() as c:
            response = c.request(method, path, **kwargs)
        if expect is not None and response.status_code != expect:
            raise AssertionError(f"{self.name}: {method} {path} → {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs)

    def health(self, timeout: float = 15) -> tuple[int, dict[str, Any]]:
        # with the token: without it, /health of an instance that has one says only ok or not
        response = httpx.get(self.url + "/health", headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout)
        return response.status_code, response.json()

    def run(self, pipeline: str, slot: str | None = None) -> int:
        """``POST /pipeline/run {"name", "slot"}``; the run's id."""
        body: dict[str, Any] = {"name": pipeline}
        if slot is not None:
            body["slot"] = slot
        return int(self.post("/pipeline/run", body)["run_id"])

    def schedule(self, pipeline: str, cron: str) -> dict[str, Any]:
        return self.post("/pipeline/run", {"name": pipeline, "cron": cron})["job"]

    def run_record(self, run_id: int) -> dict[str, Any]:
        return self.get(f"/runs/{run_id}")

    def logs(self, run_id: int) -> list[str]:
        return [line["line"] for line in self.get(f"/runs/{run_id}/logs")["lines"]]

    def wait_run(self, run_id: int, timeout: float = 120) -> dict[str, Any]:
        return wait_for(
            lambda: (run := self.run_record(run_id))["status"] not in ACTIVE and run,
            timeout,
            f"run {run_id} on {self.name} to end",
            interval=0.2,
            ignore=UNREACHABLE,
        )

    def runs(self, **params: Any) -> list[dict[str, Any]]:
        return self.get("/runs", params={"limit": 1000, **params})["runs"]

    def votes(self, dataset: str, slot: str | None = None) -> dict[str, Any]:
        """``GET /datasets/{name}/votes[?slot=T]``."""
        return self.get(f"/datasets/{dataset}/votes", params={"slot": slot} if slot else {})

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            text = []
        return f"--- {self.name} ({self.log_path}) ---\n" + "\n".join(text)


# ------------------------------------------------------------------------ the federation


def git(repo: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {repo}: {result.stderr}")
    return result.stdout


@dataclass
class Commit:
    sha: str
    parents: list[str]
    subject: str
    trailers: dict[str, str]


class Federation:
    """The instances, the etcd cluster they share (under a prefix of this test's own) and the
    shared remote's directory, where every dataset is a bare repository."""

    def __init__(self, cluster: Any, root: Path, docker_host: str, image: str) -> None:
        self.cluster = cluster
        self.root = root
        self.docker_host = docker_host
        self.image = image
        self.prefix = f"/fed-{uuid.uuid4().hex[:10]}/"
        self.remotes = root / "remotes"
        self.remotes.mkdir(parents=True, exist_ok=True)
        self.nodes: list[Node] = []

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "registry_backend": "etcd",
            "registry_prefix": self.prefix,
            "registry_timeout": 3.0,
            "instance_ttl": 6,
            "federation_retry_interval": 0.5,
            "docker_host": self.docker_host,
            "network_mode": "none",
            "pull_policy": "never",
            "push_retries": 1,
            "local_remote_roots": [str(self.remotes)],
            **overrides,
        }

    def add_nodes(self, count: int, **overrides: Any) -> list[Node]:
        """``count`` more instances (``node-a``, ``node-b``…), started together."""
        new = []
        for _ in range(count):
            name = f"node-{chr(ord('a') + len(self.nodes))}"
            proxies = [TcpProxy(m.client_port).start() for m in self.cluster.members]
            node = Node(name, self.root / name, self.settings(**overrides), proxies)
            self.nodes.append(node)
            new.append(node)
        for node in new:
            node.launch()
        for node in new:
            node.wait_up()
        return new

    def close(self) -> None:
        for node in self.nodes:
            if node.running:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(20)
                except subprocess.TimeoutExpired:
                    node.kill()
            for proxy in node.proxies:
                proxy.close()

    def logs(self) -> str:
        return "\n".join(node.log_tail() for node in self.nodes)

    # etcd faults ----------------------------------------------------------------------------

    def lose_quorum(self) -> list[int]:
        """Stop every member but the leader (2 of 3): members stay reachable, no quorum. The stopped indexes."""
        leader = self.cluster.leader_index()
        stopped = [i for i in range(len(self.cluster.members)) if i != leader]
        for i in stopped:
            self.cluster.stop_member(i)
        return stopped

    def restore_members(self) -> None:
        """Start every stopped member again and wait for a healthy cluster."""
        stopped = [i for i, m in enumerate(self.cluster.members) if not m.running]
        for i in stopped:
            self.cluster.start_member(i, state="existing")
        if stopped:
            self.cluster.wait_healthy()

    # registration through the API -----------------------------------------------------

    @property
    def first(self) -> Node:
        return self.nodes[0]

    def register_tool(self, name: str, image: str | None = None, via: Node | None = None) -> None:
        (via or self.first).post("/registry/tools", {"name": name, "image": image or self.image, "author": "fedkit"})

    def register_dataset(self, name: str, via: Node | None = None, **body: Any) -> Path:
        """A bare repository in the shared remote's directory, registered as dataset ``name``."""
        repo = self.remotes / f"{name}.git"
        if not repo.exists():
            subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(repo)], check=True)
        (via or self.first).post("/registry/datasets", {"name": name, "body": {"master": str(repo), **body}})
        return repo

    def define(self, definition: dict[str, Any], nodes: list[Node] | None = None) -> None:
        """``POST /pipeline/init`` of the same definition on each instance (all by default)."""
        for node in nodes or self.nodes:
            node.post("/pipeline/init", definition)

    def run_all(self, pipeline: str, nodes: list[Node] | None = None, slot: str | None = None) -> dict[str, int]:
        """Start ``pipeline`` on each instance; ``{instance: run id}``."""
        return {node.name: node.run(pipeline, slot=slot) for node in nodes or self.nodes}

    def wait_runs(self, started: list[tuple[Node, int]], timeout: float = 180) -> list[dict[str, Any]]:
        return [node.wait_run(run_id, timeout) for node, run_id in started]

    # the shared remote ------------------------------------------------------------------

    def repo(self, dataset: str) -> Path:
        return self.remotes / f"{dataset}.git"

    def ground_truth_log(self, dataset: str) -> list[Commit]:
        """Every commit of the remote's ground-truth, newest first, with its ``Mao-*`` trailers."""
        repo = self.repo(dataset)
        if not git(repo, "rev-parse", "--verify", "--quiet", GROUND_TRUTH, check=False).strip():
            return []
        fmt = "%H%x1f%P%x1f%s%x1f%(trailers:unfold,only)%x1e"
        out = []
        for record in git(repo, "log", GROUND_TRUTH, f"--format={fmt}").split("\x1e"):
            if not record.strip():
                continue
            sha, parents, subject, trailers = record.strip("\n").split("\x1f")
            pairs = dict(line.split(": ", 1) for line in trailers.splitlines() if ": " in line)
            out.append(Commit(sha, parents.split(), subject, pairs))
        return out

    def reachable(self, dataset: str, sha: str) -> bool:
        """Is ``sha`` part of the remote's ground-truth?"""
        result = subprocess.run(
            ["git", "--git-dir", str(self.repo(dataset)), "merge-base", "--is-ancestor", sha, GROUND_TRUTH],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def files(self, dataset: str, ref: str = GROUND_TRUTH) -> dict[str, str]:
        repo = self.repo(dataset)
        names = git(repo, "ls-tree", "-r", "--name-only", ref).split()
        return {name: git(repo, "show", f"{ref}:{name}") for name in names}

    def registry_value(self, key: str) -> dict[str, Any] | None:
        """A value of this federation's registry, read straight from etcd."""
        import base64
        import json

        for member in self.cluster.members:
            if not member.running:
                continue
            body = {"key": base64.b64encode((self.prefix + key).encode()).decode()}
            try:
                answer = httpx.post(member.client_url + "/v3/kv/range", json=body, timeout=5).json()
            except httpx.HTTPError:
                continue
            kvs = answer.get("kvs") or []
            return json.loads(base64.b64decode(kvs[0]["value"])) if kvs else None
        raise AssertionError("no etcd member answered")


def writer(name: str, tool: str, dataset: str, path: str, content: str = "$HOSTNAME $(date +%s)") -> dict[str, Any]:
    """A one-step pipeline whose step writes ``content`` (a shell word) to ``path`` in ``dataset``."""
    return {
        "name": name,
        "steps": [
            {
                "name": f"{name}-w",
                "tool": tool,
                "output_dataset": dataset,
                "cmd": ["sh", "-c", f'echo "{content}" > /usr/src/app/data/{path}'],
            }
        ],
    }
