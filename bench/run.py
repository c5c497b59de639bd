"""Benchmark: a MAO pipeline run through the HTTP API against the same work done by hand.

    scripts/bench [--repeat N] [--json]

Both sides do the same work under the same conditions, interleaved in one run:

- **by hand** (the baseline), per step: ``docker run`` of the tool with MAO's network mode
  and the same mount, ``git add -A && git commit``, merge of the node branch into
  ``ground-truth`` (``--no-ff``), one push of both branches (``--atomic``), as MAO pushes;
- **MAO**: ``POST /pipeline/run {"name"}`` against a ``maoctl serve`` of its own (SQLite,
  local registry, a bare-repository dataset), from submission until ``GET /runs/{id}``
  says the run finished (a long poll, ``?wait=``, answered as the run ends). MAO adds
  what makes it MAO: provenance trailers, the run record and its logs, the node branch in
  the registry and the lock around the merge.

Repeats alternate baseline and MAO; each side keeps one dataset for all its repeats, so
history grows alike. Reported per pipeline size: min / median / max seconds and the ratio
of medians (MAO / by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mao.config import Settings  # noqa: E402

IMAGE = "mao/demo-tool:bench"
CMD = ["sh", "/usr/src/app/tool.sh", "collect"]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def sh(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    subprocess.run(list(args), cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def bare(path: Path) -> Path:
    sh("git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ByHand:
    """The baseline: one clone with the node branch, a worktree of ground-truth."""

    def __init__(self, work: Path, network: str, docker_env: dict[str, str]) -> None:
        self.env = {**os.environ, **GIT_ENV}
        self.docker_env = docker_env
        self.network = network
        remote = bare(work / "hand.git")
        self.clone = work / "hand"
        self.gt = work / "hand-gt"
        sh("git", "clone", "-q", str(remote), str(self.clone), env=self.env)
        sh("git", "commit", "-q", "--allow-empty", "-m", "start", cwd=self.clone, env=self.env)
        sh("git", "push", "-q", "origin", "HEAD:ground-truth", cwd=self.clone, env=self.env)
        sh("git", "checkout", "-q", "-b", "node", cwd=self.clone, env=self.env)
        sh("git", "worktree", "add", "-q", str(self.gt), "ground-truth", cwd=self.clone, env=self.env)
        self.count = 0

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.count += 1
            sh(
                "docker",
                "run",
                "--rm",
                "--network",
                self.network,
                "-v",
                f"{self.clone}:/usr/src/app/data",
                IMAGE,
                *CMD,
                env=self.docker_env,
            )
            sh("git", "add", "-A", cwd=self.clone, env=self.env)
            sh("git", "commit", "-q", "-m", f"step {self.count}", cwd=self.clone, env=self.env)
            sh("git", "merge", "-q", "--no-ff", "-m", f"merge {self.count}", "node", cwd=self.gt, env=self.env)
            # both branches in one push, as MAO pushes them
            sh("git", "push", "-q", "--atomic", "origin", "node", "ground-truth", cwd=self.clone, env=self.env)
        return time.perf_counter() - start


class ThroughAPI:
    """A ``maoctl serve`` of its own; pipelines ``p1`` (one step) and ``p10`` (ten steps), all writing one dataset."""

    def __init__(self, work: Path, network: str, docker_host: str | None) -> None:
        self.port = free_port()
        config = work / "mao.yaml"
        data = work / "data"
        config.write_text(
            json.dumps(
                {
                    "instance_name": "bench",
                    "data_dir": str(data),
                    "api_port": self.port,
                    "network_mode": network,
                    "pull_policy": "never",
                    "local_remote_roots": [str(work)],
                    **({"docker_host": docker_host} if docker_host else {}),
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_")}
        self.log = open(work / "serve.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mao.cli.main", "--config", str(config), "serve", "--log-level", "warning"],
            env={**env, "PYTHONPATH": str(ROOT / "src")},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        token_file = data / "api-token"
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"maoctl serve did not start; see {work / 'serve.log'}")
            time.sleep(0.1)
        if token_file.is_file():
            self.client.headers["authorization"] = f"Bearer {token_file.read_text().strip()}"
        remote = bare(work / "api.git")
        self._post("/registry/tools", {"name": "demo", "image": IMAGE})
        self._post("/registry/datasets", {"name": "out", "body": {"master": str(remote), "nodes": []}})
        for steps in (1, 10):
            self._post(
                "/pipeline/init",
                {
                    "name": f"p{steps}",
                    "steps": [
                        {"name": f"p{steps}-s{i}", "tool": "demo", "output_dataset": "out", "cmd": CMD}
                        for i in range(steps)
                    ],
                },
            )

    def _post(self, path: str, body: dict) -> dict:
        response = self.client.post(path, json=body)
        if response.status_code >= 400:
            raise SystemExit(f"POST {path}: {response.status_code} {response.text}")
        return response.json()

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        run_id = self._post("/pipeline/run", {"name": f"p{steps}"})["run_id"]
        while True:  # a long poll: answered as the run ends (GET /runs/{id}?wait=)
            run = self.client.get(f"/runs/{run_id}", params={"wait": 60}, timeout=90).json()
            if run.get("status") not in ("pending", "running"):
                break
        elapsed = time.perf_counter() - start
        if run.get("status") != "succeeded":
            raise SystemExit(f"benchmark run failed: {run.get('error')}")
        return elapsed

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def summary(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="interleaved repeats of the one-step pipeline")
    parser.add_argument("--docker-host", default=os.environ.get("MAO_DOCKER_HOST") or os.environ.get("DOCKER_HOST"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not shutil.which("docker"):
        raise SystemExit("the docker CLI is needed for the baseline")
    docker_env = {**os.environ, **({"DOCKER_HOST": args.docker_host} if args.docker_host else {})}
    base = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
    sh(
        "docker",
        "build",
        "-q",
        "--build-arg",
        f"BASE={base}",
        "-t",
        IMAGE,
        str(ROOT / "src/mao/demo"),
        env={**docker_env, "DOCKER_BUILDKIT": "0"},
    )
    network = Settings(_env_file=None).network_mode  # MAO's default network mode, used by both sides
    version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        env=docker_env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    results = []
    with tempfile.TemporaryDirectory(prefix="mao-bench-") as tmp:
        work = Path(tmp)
        (work / "hand-side").mkdir()
        (work / "api-side").mkdir()
        hand = ByHand(work / "hand-side", network, docker_env)
        api = ThroughAPI(work / "api-side", network, args.docker_host)
        try:
            api.run(1)  # warm-up: first clone, first worktree
            hand.run(1)
            for steps, repeat in ((1, args.repeat), (10, max(2, args.repeat // 2))):
                by_hand, mao = [], []
                for _ in range(repeat):
                    by_hand.append(hand.run(steps))
                    mao.append(api.run(steps))
                h, m = summary(by_hand), summary(mao)
                results.append(
                    {
                        "steps": steps,
                        "repeat": repeat,
                        "by_hand_s": h,
                        "mao_s": m,
                        "ratio": round(m["median"] / h["median"], 2),
                    }
                )
        finally:
            api.close()
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "engine": f"Docker {version}",
        "network_mode": network,
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return 0
    print(f"{meta['date']}, {meta['cores']} cores, {meta['engine']}, steps on network '{network}' on both sides")
    print("seconds, min / median / max; ratio = MAO median / by-hand median")
    print(f"{'pipeline':<9} {'repeats':>7}  {'by hand':>22}  {'MAO (HTTP API)':>22}  {'ratio':>5}")
    for r in results:
        h, m = r["by_hand_s"], r["mao_s"]
        print(
            f"{str(r['steps']) + '-step':<9} {r['repeat']:>7}  "
            f"{h['min']:>6.3f} {h['median']:>7.3f} {h['max']:>7.3f}  "
            f"{m['min']:>6.3f} {m['median']:>7.3f} {m['max']:>7.3f}  {r['ratio']:>5.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
