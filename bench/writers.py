"""Many instances writing one dataset: a step's overhead against the same instances each writing a dataset of its own.

    python3 bench/writers.py [--counts 1,5,10,20] [--rounds 3]

Each instance is a process of its own (an ``Instance`` with its own SQLite store and clones)
and they share one real etcd (started here, from ``$MAO_TEST_ETCD_BIN`` or ``etcd`` on the
PATH) and one remote: over SSH when ``$MAO_TEST_SSH_URL_BASE``, ``$MAO_TEST_SSH_KEY_DIR`` and
``$MAO_TEST_SSH_REPO_ROOT`` are set (``scripts/services.sh up`` writes them to
``.run/services.env``), else local bare repositories. The tool is an in-process stand-in that
appends one row to ``rows.csv`` and times itself, so a step's **overhead** is its duration
minus the tool's time: what MAO adds around the work (clone and fetch, commit, push, the merge
lock, the merge).

For each count N, rounds alternate between the two cases, each round firing one step on each
of the N instances at once:

- **shared**: every instance runs pipeline ``same`` into dataset ``shared`` (the same file);
- **own** (the control): every instance runs ``own-<instance>`` into a dataset of its own,
  under the same load: no lock is ever contended.

Reported: the median overhead of each case, the ratio shared/own, how many merges rode a
train, and a check that every node commit of the shared case is reachable from
``ground-truth`` (nothing lost). Writes ``bench/results/writers.json``.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


# the worker: one instance per process --------------------------------------------------


class Member:
    """One instance of the benchmark, in this process, answering the driver's commands."""

    def __init__(self, args: argparse.Namespace) -> None:
        from growth import TOOLS, Timed

        from mao.config import Settings
        from mao.executor.fake import FakeExecutor
        from mao.instance import Instance

        self.name = args.worker
        self.timed = Timed()
        settings = Settings(
            instance_name=args.worker,
            data_dir=Path(args.data) / args.worker,
            registry_backend="etcd",
            etcd_endpoints=[args.etcd],
            registry_prefix=args.prefix,
            ssh_key_dir=Path(args.ssh_key_dir) if args.ssh_key_dir else None,
            local_remote_roots=[args.data],
            push_retries=10,
            _env_file=None,
        )
        tools = {f"img/{tool}": self.timed.tool(fn) for tool, fn in TOOLS.items()}
        self.inst = Instance(settings, executor=FakeExecutor(tools))
        self.inst.setup()
        self.inst.start_background()  # as `maoctl serve` does: heartbeat, keys published, replayer...
        self.inst.datasets.retry_delay = 0.05
        self.timed.watch(self.inst)

    def run(self, words: list[str]) -> dict[str, Any]:
        inst = self.inst
        run_id = inst.runner.run_sync(words[0])
        run = inst.store.get_run(run_id)
        entries = inst.store.logs(run_id)
        lines = [entry.line for entry in entries]
        if os.environ.get("MAO_BENCH_LOG") and entries:
            for entry in entries:
                at = (entry.ts - entries[0].ts).total_seconds()
                print(f"# {self.name} {at:7.2f} {entry.line}", file=sys.stderr)
        overheads = self.timed.take()
        step = run.steps[0] if run.steps else None
        return {
            "status": str(run.status),
            "error": run.error,
            "overhead": overheads[0] if overheads else None,
            "output_commit": getattr(step, "output_commit", None),
            "rode": any("train after" in text for text in lines),
            "carried": any("waiting node commits of other instances" in text for text in lines),
        }

    def register(self, pairs: list[str]) -> dict[str, Any]:
        """The tool and the datasets, once for the federation."""
        from mao.models import DatasetBody, DatasetIn, ToolIn

        self.inst.catalog.add_tool(ToolIn(name="append", image="img/append"))
        for pair in pairs:
            name, url = pair.split("=", 1)
            self.inst.catalog.add_dataset(DatasetIn(name=name, body=DatasetBody(master=url)))
        return {"registered": True}

    def define(self, pairs: list[str]) -> dict[str, Any]:
        """This instance's pipelines, ``<pipeline>=<dataset>``."""
        from mao.errors import MAOError
        from mao.models import PipelineIn

        for pair in pairs:
            name, dataset = pair.split("=", 1)
            step = {"name": name, "tool": "append", "output_dataset": dataset}
            try:
                self.inst.pipelines.init(PipelineIn.model_validate({"name": name, "steps": [step]}))
            except MAOError as exc:
                if "exists" not in exc.message:
                    raise
        return {"defined": True}


def worker(args: argparse.Namespace) -> int:
    member = Member(args)
    commands = {"run": member.run, "register": member.register, "define": member.define}
    print(json.dumps({"ready": member.name}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        print(json.dumps(commands[words[0]](words[1:])), flush=True)
    member.inst.close()
    return 0


# the driver ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_etcd(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = os.environ.get("MAO_TEST_ETCD_BIN") or shutil.which("etcd")
    if not binary:
        raise SystemExit("etcd not found: set MAO_TEST_ETCD_BIN or install etcd-server (scripts/services.sh up)")
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    proc = subprocess.Popen(
        [
            binary,
            "--name=bench",
            f"--data-dir={work / 'etcd'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=bench=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("etcd did not start")


class Remotes:
    """Bare repositories: under the SSH git server's root when it is configured, else local."""

    def __init__(self, work: Path) -> None:
        base, keys, root = (os.environ.get(f"MAO_TEST_SSH_{k}") for k in ("URL_BASE", "KEY_DIR", "REPO_ROOT"))
        self.ssh = bool(base and keys and root)
        self.key_dir = keys if self.ssh else None
        tag = f"bench-writers-{uuid.uuid4().hex[:8]}"
        self.root = Path(root) / tag if self.ssh else work / "remotes"  # type: ignore[arg-type]
        self.base = f"{base}/{tag}" if self.ssh else str(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def make(self, name: str) -> str:
        path = self.root / f"{name}.git"
        subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
        return f"{self.base}/{name}.git"

    def path(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def remove(self) -> None:
        if self.ssh:
            shutil.rmtree(self.root, ignore_errors=True)


class Worker:
    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", name, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"worker {self.name} ended (exit code {self.proc.wait()})")
            if line.startswith("{"):
                return dict(json.loads(line))

    def ask(self, line: str) -> dict[str, Any]:
        self.send(line)
        return self.answer()

    def stop(self) -> None:
        try:
            self.send("quit")
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def round_of(group: list[Worker], pipeline: dict[str, str]) -> list[dict[str, Any]]:
    for w in group:
        w.send(f"run {pipeline[w.name]}")
    answers = [w.answer() for w in group]
    bad = [a for a in answers if a["status"] != "succeeded"]
    if bad:
        raise SystemExit(f"runs failed: {bad}")
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,5,10,20", help="instance counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each case per count")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--etcd", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--ssh-key-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    counts = [int(c) for c in args.counts.split(",")]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mao-writers-") as tmp:
        work = Path(tmp)
        etcd, url = start_etcd(work)
        remotes = Remotes(work)
        prefix = f"/bench-{uuid.uuid4().hex[:8]}/"
        common = ["--etcd", url, "--prefix", prefix, "--data", str(work), "--ssh-key-dir", remotes.key_dir or ""]
        names = [f"w{i:02d}" for i in range(max(counts))]
        workers: list[Worker] = []
        try:
            print(f"starting {len(names)} instances (remote: {'ssh' if remotes.ssh else 'local'})", flush=True)
            workers = [Worker(name, common) for name in names]
            for w in workers:
                w.answer()
            datasets = {"shared": remotes.make("shared"), **{f"own-{n}": remotes.make(f"own-{n}") for n in names}}
            workers[0].ask("register " + " ".join(f"{k}={v}" for k, v in datasets.items()))
            for w in workers:
                w.ask(f"define same=shared own-{w.name}=own-{w.name}")
            same = {n: "same" for n in names}
            own = {n: f"own-{n}" for n in names}
            commits: list[str] = []
            print(f"{'instances':>9}  {'shared ms':>10}  {'own ms':>8}  {'ratio':>6}  {'rode':>5}", flush=True)
            for count in counts:
                group = workers[:count]
                round_of(group, same)  # each instance's first step: clone and node branch
                round_of(group, own)
                shared_o: list[float] = []
                own_o: list[float] = []
                rode = 0
                for _ in range(args.rounds):
                    answers = round_of(group, same)
                    shared_o += [a["overhead"] for a in answers]
                    rode += sum(1 for a in answers if a["rode"])
                    commits += [a["output_commit"] for a in answers if a["output_commit"]]
                    own_o += [a["overhead"] for a in round_of(group, own)]
                row = {
                    "instances": count,
                    "rounds": args.rounds,
                    "shared_ms": round(statistics.median(shared_o) * 1000, 1),
                    "own_ms": round(statistics.median(own_o) * 1000, 1),
                    "rode": rode,
                    "steps": len(shared_o),
                }
                row["ratio"] = round(row["shared_ms"] / row["own_ms"], 2)
                results.append(row)
                print(
                    f"{count:>9}  {row['shared_ms']:>10.1f}  {row['own_ms']:>8.1f}  {row['ratio']:>5.2f}x  {rode:>5}",
                    flush=True,
                )
            shared = remotes.path("shared")
            lost = [
                c
                for c in commits
                if subprocess.run(
                    ["git", "merge-base", "--is-ancestor", c, "ground-truth"], cwd=shared, check=False
                ).returncode
                != 0
            ]
            print(f"node commits of the shared case: {len(commits)}, not reachable from ground-truth: {len(lost)}")
        finally:
            for w in workers:
                w.stop()
            etcd.terminate()
            etcd.wait(30)
            remotes.remove()
    out = ROOT / "bench" / "results" / "writers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"results": results, "lost": len(lost), "remote": "ssh" if remotes.ssh else "local"}, indent=2)
        + "\n"
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
