"""A real etcd cluster of loopback members, each its own process (used by fixtures in any folder)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from waiting import wait_for


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class EtcdCluster:
    """A real etcd cluster of loopback members, each its own process."""

    binary: str
    members: list[EtcdMember]
    token: str = field(default_factory=lambda: f"mao-test-{uuid.uuid4().hex[:8]}")
    extra_args: list[str] = field(default_factory=list)
    """More flags for every member (e.g. ``--auth-token-ttl``)."""

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def start_member(self, index: int, state: str = "new") -> None:
        m = self.members[index]
        assert not m.running, f"{m.name} is already running"
        args = [
            self.binary,
            "--name",
            m.name,
            "--data-dir",
            str(m.data_dir),
            "--listen-client-urls",
            m.client_url,
            "--advertise-client-urls",
            m.client_url,
            "--listen-peer-urls",
            m.peer_url,
            "--initial-advertise-peer-urls",
            m.peer_url,
            "--initial-cluster",
            self.initial_cluster,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            self.token,
            # fast elections: the failover test waits for one
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            *self.extra_args,
        ]
        log = open(m.log_path, "ab")
        try:
            m.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def stop_member(self, index: int, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        m = self.members[index]
        if not m.running:
            return
        m.proc.send_signal(sig)
        try:
            m.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait(timeout=5)

    def member_healthy(self, index: int) -> bool:
        m = self.members[index]
        if not m.running:
            return False
        try:
            r = httpx.get(m.client_url + "/health", timeout=1.0)
            return r.status_code == 200 and r.json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 30) -> None:

        def healthy() -> bool:
            for m in self.members:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd member {m.name} exited ({m.proc.returncode}):\n{self.log_tail(m)}")
            return all(self.member_healthy(i) for i, m in enumerate(self.members) if m.proc is not None)

        wait_for(
            healthy,
            timeout,
            lambda: "the etcd cluster to be healthy:\n" + "\n".join(self.log_tail(m) for m in self.members),
            0.1,
        )

    def leader_index(self) -> int:
        """Index of the member that is the raft leader, asked of any running member."""
        for m in self.members:
            if not m.running:
                continue
            try:
                status = httpx.post(m.client_url + "/v3/maintenance/status", json={}, timeout=2).json()
            except httpx.HTTPError:
                continue
            leader = int(status["leader"])
            members = httpx.post(m.client_url + "/v3/cluster/member/list", json={}, timeout=2).json()["members"]
            for member in members:
                if int(member["ID"]) == leader:
                    return [x.name for x in self.members].index(member["name"])
        raise RuntimeError("no running etcd member knows a leader")

    @staticmethod
    def log_tail(m: EtcdMember, lines: int = 15) -> str:
        try:
            text = m.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            text = []
        return f"--- {m.name} ({m.log_path}) ---\n" + "\n".join(text)

    def stop(self) -> None:
        """Tear the whole cluster down. SIGKILL: its data is thrown away, and a leader
        stopped gracefully waits seconds to hand over to peers that are gone."""
        for m in self.members:
            if m.running:
                m.proc.kill()
        for m in self.members:
            if m.proc is not None:
                m.proc.wait(timeout=10)


def etcd_binary() -> str | None:
    return os.environ.get("MAO_TEST_ETCD_BIN") or shutil.which("etcd")
