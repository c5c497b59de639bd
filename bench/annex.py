"""Benchmark: a step writing large files into an annexed dataset, beside the same work by hand.

    python3 bench/annex.py [--files 4] [--mb 50] [--repeat 3] [--json]

Each round, interleaved, the same tool (busybox ``dd`` writing ``--files`` new files of
``--mb`` MB) runs:

- **as a MAO step**: ``POST /pipeline/run`` against a ``maoctl serve`` of its own, whose
  output dataset says ``annex: {largefiles: "largerthan=1mb"}``, until ``GET /runs/{id}``
  says the run ended (container, commit with trailers, content copied to the remote,
  merge into ground-truth pushed with the node branch, the git-annex branch pushed);
- **by hand**: ``docker run`` of the tool on a git-annex clone, ``git annex add``, ``git
  commit``, ``git annex copy --to origin``, ``git push``, ``git annex sync --only-annex``.

Both write to bare repositories on the loopback SSH server of scripts/services.sh
(``MAO_TEST_SSH_*``, ``MAO_TEST_DOCKER_HOST``). Then a second, fresh ``maoctl serve`` runs a
step that reads one of the files (``input_paths``): reported are the remote's git history
growth (outside ``annex/``), its annex growth and the second instance's disk use.
Results go to ``bench/results/annex.json``.
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
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mao.config import Settings  # noqa: E402
from mao.datasets import Git  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "annex.json"
RULE = "largerthan=1mb"
MB = 1024 * 1024
IMAGE = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
NETWORK = Settings(_env_file=None).network_mode  # MAO's default, used by both sides
# The tool: N new files of MB megabytes each under out/ (a file it replaces is removed first,
# as tools write new files; an annexed file by hand is a read-only link).
TOOL = (
    "set -e; mkdir -p /usr/src/app/data/out; i=0; while [ $i -lt $N ]; do "
    "f=/usr/src/app/data/out/part-$i.bin; rm -f $f; "
    "dd if=/dev/urandom of=$f bs=1048576 count=$MB 2>/dev/null; i=$((i+1)); done"
)
READER = "wc -c /usr/src/app/input/out/part-0.bin > /usr/src/app/data/size.txt"


def tool_env(files: int, mb: int) -> list[str]:
    return ["-e", f"N={files}", "-e", f"MB={mb}"]


def du(path: Path) -> int:
    """Bytes on disk under ``path``, each inode once."""
    if not path.exists():
        return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    for p in [path, *path.rglob("*")]:
        st = p.lstat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def history_bytes(bare: Path) -> int:
    """Disk use of a bare repository outside its annex."""
    return du(bare) - du(bare / "annex")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """A ``maoctl serve`` of its own (SQLite, local registry), reached over HTTP."""

    def __init__(self, work: Path, name: str, key_dir: Path, docker_host: str | None) -> None:
        work.mkdir(parents=True)
        self.work = work
        self.port = free_port()
        config = work / "mao.yaml"
        self.data = work / "data"
        settings = {
            "instance_name": name,
            "data_dir": str(self.data),
            "api_port": self.port,
            "network_mode": NETWORK,
            "pull_policy": "never",
            "ssh_key_dir": str(key_dir),
            "local_remote_roots": [str(work)],
            **({"docker_host": docker_host} if docker_host else {}),
        }
        config.write_text(json.dumps(settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_")}
        self.log = open(work / "serve.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mao.cli.main", "--config", str(config), "serve", "--log-level", "warning"],
            env={**env, "PYTHONPATH": str(ROOT / "src")},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                tail = (work / "serve.log").read_text()[-2000:]
                raise SystemExit(f"maoctl serve did not start:\n{tail}")
            time.sleep(0.2)
        token_file = self.data / "api-token"
        if token_file.is_file():
            self.client.headers["authorization"] = f"Bearer {token_file.read_text().strip()}"

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        if response.status_code >= 400:
            raise SystemExit(f"POST {path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def run(self, pipeline: str) -> float:
        started = time.perf_counter()
        run_id = self.post("/pipeline/run", {"name": pipeline})["run_id"]
        while True:
            run = self.client.get(f"/runs/{run_id}", params={"wait": 60}, timeout=90).json()
            if run.get("status") not in ("pending", "running"):
                break
        elapsed = time.perf_counter() - started
        if run.get("status") != "succeeded":
            raise SystemExit(
                f"benchmark run failed: {run.get('error')}\n{(self.work / 'serve.log').read_text()[-2000:]}"
            )
        return elapsed

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Bench:
    def __init__(self, work: Path, files: int, mb: int) -> None:
        self.work = work
        self.files, self.mb = files, mb
        self.key_dir = Path(os.environ["MAO_TEST_SSH_KEY_DIR"])
        self.url_base = os.environ["MAO_TEST_SSH_URL_BASE"].rstrip("/")
        self.repo_root = Path(os.environ["MAO_TEST_SSH_REPO_ROOT"])
        self.docker_host = os.environ.get("MAO_TEST_DOCKER_HOST") or os.environ.get("DOCKER_HOST")
        self.docker_env = {**os.environ, **({"DOCKER_HOST": self.docker_host} if self.docker_host else {})}
        self.remotes: list[Path] = []
        self.git = Git(ssh_key_dir=self.key_dir, name="Bench", email="bench@example.org", timeout=600)

    def remote(self) -> tuple[str, Path]:
        name = f"bench-annex-{uuid.uuid4().hex[:10]}.git"
        path = self.repo_root / name
        subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
        self.remotes.append(path)
        return f"{self.url_base}/{name}", path

    def serve(self, name: str, big_url: str) -> Serve:
        serve = Serve(self.work / name, name, self.key_dir, self.docker_host)
        serve.post("/registry/tools", {"name": "writer", "image": IMAGE})
        serve.post("/registry/datasets", {"name": "big", "body": {"master": big_url, "annex": {"largefiles": RULE}}})
        return serve

    def by_hand(self, clone: Path, round_: int) -> float:
        env = self.git.env | {"GIT_ANNEX_USE_GIT_SSH": "1"}

        def git(*args: str) -> None:
            subprocess.run(["git", *args], cwd=clone, env=env, check=True, capture_output=True)

        started = time.perf_counter()
        subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                NETWORK,
                "-v",
                f"{clone}:/usr/src/app/data",
                *tool_env(self.files, self.mb),
                IMAGE,
                "sh",
                "-c",
                TOOL,
            ],
            env=self.docker_env,
            check=True,
            capture_output=True,
        )
        git("annex", "add", "--quiet", "out")
        git("commit", "--quiet", "-m", f"round {round_}")
        git("annex", "copy", "--quiet", "--to", "origin", "out")
        git("push", "--quiet", "origin", "ground-truth")
        git("annex", "sync", "--quiet", "--only-annex", "--no-content", "origin")  # the git-annex branch
        return time.perf_counter() - started

    def hand_clone(self, url: str) -> Path:
        clone = self.work / "hand"
        env = self.git.env | {"GIT_ANNEX_USE_GIT_SSH": "1"}
        subprocess.run(["git", "init", "-q", "--initial-branch=ground-truth", str(clone)], check=True, env=env)
        for args in (
            ["remote", "add", "origin", url],
            ["annex", "init", "--quiet", "by hand"],
            ["config", "annex.largefiles", RULE],
            ["commit", "--quiet", "--allow-empty", "-m", "start"],
            ["push", "--quiet", "origin", "ground-truth", "git-annex"],
            ["config", "remote.origin.annex-ignore", "false"],
            ["annex", "enableremote", "origin"],
        ):
            subprocess.run(["git", *args], cwd=clone, env=env, check=True, capture_output=True)
        return clone

    def cleanup(self) -> None:
        for path in self.remotes:
            subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
            shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mb", type=int, default=50, help="MB per file (e.g. 5 for a quick run)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name in ("MAO_TEST_SSH_KEY_DIR", "MAO_TEST_SSH_URL_BASE", "MAO_TEST_SSH_REPO_ROOT"):
        if not os.environ.get(name):
            print(f"{name} is not set: source .run/services.env (scripts/services.sh up)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="mao-bench-annex-"))
    bench = Bench(work, args.files, args.mb)
    servers: list[Serve] = []
    try:
        mao_url, mao_bare = bench.remote()
        hand_url, _ = bench.remote()
        small_url, _ = bench.remote()
        first = bench.serve("first", mao_url)
        servers.append(first)
        step = {"name": "w", "tool": "writer", "output_dataset": "big", "cmd": ["sh", "-c", TOOL]}
        step["env"] = {"N": str(args.files), "MB": str(args.mb)}
        first.post("/pipeline/init", {"name": "write", "steps": [step]})
        clone = bench.hand_clone(hand_url)
        history_before = history_bytes(mao_bare)
        first.run("write")  # warm-up, not counted: the first clone, git-annex initialised on both sides
        bench.by_hand(clone, 0)
        mao: list[float] = []
        hand: list[float] = []
        for round_ in range(1, args.repeat + 1):
            mao.append(first.run("write"))
            hand.append(bench.by_hand(clone, round_))
        history_growth = history_bytes(mao_bare) - history_before
        annex_growth = du(mao_bare / "annex")
        # a fresh second instance whose step reads one file
        second = bench.serve("second", mao_url)
        servers.append(second)
        second.post("/registry/datasets", {"name": "small", "body": {"master": small_url}})
        reader = {
            "name": "r",
            "tool": "writer",
            "input_dataset": "big",
            "input_paths": ["out/part-0.bin"],
            "output_dataset": "small",
            "cmd": ["sh", "-c", READER],
        }
        second.post("/pipeline/init", {"name": "read", "steps": [reader]})
        read_one = second.run("read")
        second_disk = du(second.data)
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "cores": os.cpu_count(),
            "files": args.files,
            "mb_per_file": args.mb,
            "rounds": args.repeat,
            "mao_step_s": [round(t, 3) for t in mao],
            "by_hand_s": [round(t, 3) for t in hand],
            "mao_median_s": round(statistics.median(mao), 3),
            "by_hand_median_s": round(statistics.median(hand), 3),
            "ratio": round(statistics.median(mao) / statistics.median(hand), 2),
            "written_mb": args.files * args.mb * (args.repeat + 1),
            "remote_history_growth_mb": round(history_growth / MB, 2),
            "remote_annex_growth_mb": round(annex_growth / MB, 1),
            "second_instance_read_step_s": round(read_one, 3),
            "second_instance_disk_mb": round(second_disk / MB, 1),
        }
    finally:
        for serve in servers:
            serve.close()
        bench.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
