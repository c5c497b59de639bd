"""Benchmark: registry reads through the HTTP API, on the local and on the etcd backend.

    python3 bench/reads.py [--duration 10] [--connections 32] [--repeat 3] [--baseline-src DIR]

Each target is a real server process with the same uvicorn settings (``--log-level
warning``), loaded with ``wrk`` (``GET /registry/tools``, 20 tools registered):

- ``local``: ``maoctl serve`` with the standalone defaults (SQLite store, local registry);
- ``etcd``: ``maoctl serve`` on a real 3-member etcd cluster on loopback (``tests/etcd_kit.py``);
- ``ceiling``: a minimal FastAPI app answering the same JSON from a dict in memory (FastAPI
  encodes it per request);
- ``ceiling-bytes``: the same app answering JSON encoded once, as MAO's cached answers are:
  the most this server stack gives for this answer.

With ``--baseline-src`` (a ``src`` directory of another checkout, e.g. ``/work/main/src``),
the two ``maoctl serve`` targets are also run from that code, for a before/after ratio.
Targets are interleaved, ``--repeat`` rounds; the median of the rounds is reported.
Writes ``bench/results/reads.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from etcd_kit import EtcdCluster, EtcdMember, etcd_binary  # noqa: E402

WRK = "/usr/bin/wrk"
TOOLS = 20
PATH = "/registry/tools"

MINIMAL_APP = """
import json
import sys
import uvicorn
from fastapi import FastAPI, Response

tools = {f"tool-{i:02d}": {"name": f"tool-{i:02d}", "image": f"mao/tool-{i:02d}:1.0", "author": "bench",
         "data_repo": "", "code_repo": "", "artefact": "", "description": "a tool of the read benchmark"}
         for i in range(TOOLS)}
app = FastAPI()

body = json.dumps(tools).encode()

@app.get("/registry/tools")
async def list_tools():
    if sys.argv[2] == "bytes":  # rendered once, as MAO's cached answers are
        return Response(body, media_type="application/json")
    return tools

@app.get("/health")
async def health():
    return {"ok": True}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
""".replace("TOOLS", str(TOOLS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(i: int) -> dict:
    return {
        "name": f"tool-{i:02d}",
        "image": f"mao/tool-{i:02d}:1.0",
        "author": "bench",
        "description": "a tool of the read benchmark",
    }


class Server:
    """One server process on a port of its own, stopped by its PID."""

    def __init__(self, label: str, command: Callable[[int], list[str]], env: dict[str, str], work: Path) -> None:
        self.label = label
        self.port = free_port()
        self.log_path = work / f"{label}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            command(self.port), env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit(f"{self.label} did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def maoctl_serve(label: str, src: Path, work: Path, config: dict) -> Server:
    work = work / label
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_")}
    env["PYTHONPATH"] = str(src)

    def command(port: int) -> list[str]:
        path = work / "mao.yaml"
        path.write_text(
            json.dumps({"instance_name": label, "data_dir": str(work / "data"), "api_port": port, **config})
        )
        return [sys.executable, "-m", "mao.cli.main", "--config", str(path), "serve", "--log-level", "warning"]

    server = Server(label, command, env, work)
    server.wait()
    for i in range(TOOLS):
        r = httpx.post(server.url + "/registry/tools", json=tool(i), timeout=30)
        if r.status_code != 200:
            raise SystemExit(f"{label}: adding a tool answered {r.status_code}: {r.text}")
    return server


def minimal(work: Path, mode: str) -> Server:
    """The minimal app: ``dict`` returns its dict (FastAPI encodes it per request), ``bytes``
    returns JSON encoded once."""
    script = work / "minimal_app.py"
    script.write_text(MINIMAL_APP)
    label = "ceiling" if mode == "dict" else "ceiling-bytes"
    server = Server(label, lambda port: [sys.executable, str(script), str(port), mode], dict(os.environ), work)
    server.wait()
    return server


def wrk(url: str, duration: float, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [WRK, "-t", "2", "-c", str(connections), "-d", f"{duration:g}s", "--latency", url + PATH],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}{PATH}: {errors.group(1)} error answers under load:\n{out}")
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")}


def start_etcd(work: Path, members: int) -> EtcdCluster:
    binary = etcd_binary()
    if not binary:
        raise SystemExit("no etcd binary: set MAO_TEST_ETCD_BIN or put etcd on PATH")
    ports = [free_port() for _ in range(2 * members)]
    cluster = EtcdCluster(
        binary,
        [
            EtcdMember(
                f"n{i + 1}", ports[2 * i], ports[2 * i + 1], work / f"etcd-n{i + 1}", work / f"etcd-n{i + 1}.log"
            )
            for i in range(members)
        ],
    )
    for i in range(members):
        cluster.start_member(i)
    cluster.wait_healthy()
    return cluster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per target and round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--etcd-members", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, help="a src directory of another checkout to compare with")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "reads.json")
    args = parser.parse_args()
    if not os.access(WRK, os.X_OK):
        raise SystemExit(f"{WRK} is missing: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="mao-bench-reads-") as tmp:
        work = Path(tmp)
        cluster = start_etcd(work, args.etcd_members)
        servers: list[Server] = []
        try:
            sources = [("", ROOT / "src")]
            if args.baseline_src:
                sources.append(("baseline-", args.baseline_src.resolve()))
            for tag, src in sources:
                servers.append(maoctl_serve(f"{tag}local", src, work, {}))
                servers.append(
                    maoctl_serve(
                        f"{tag}etcd",
                        src,
                        work,
                        {
                            "registry_backend": "etcd",
                            "etcd_endpoints": cluster.endpoints,
                            "registry_prefix": f"/bench-{tag or 'new-'}reads/",
                        },
                    )
                )
            servers.append(minimal(work, "dict"))
            servers.append(minimal(work, "bytes"))
            for server in servers:  # the same answer everywhere before measuring
                body = httpx.get(server.url + PATH, timeout=30).json()
                if len(body) != TOOLS:
                    raise SystemExit(f"{server.label}: {PATH} listed {len(body)} tools, not {TOOLS}")
            rounds: dict[str, list[dict[str, float]]] = {s.label: [] for s in servers}
            for r in range(args.repeat):
                for server in servers:
                    wrk(server.url, 1.0, args.connections)  # warm-up
                    result = wrk(server.url, args.duration, args.connections)
                    rounds[server.label].append(result)
                    print(
                        f"round {r + 1}/{args.repeat} {server.label:>16}: {result['rps']:8.0f} req/s, "
                        f"p99 {result['p99_ms']:.1f} ms",
                        file=sys.stderr,
                    )
        finally:
            for server in servers:
                server.stop()
            cluster.stop()

    summary = {
        label: {
            "rps": statistics.median(x["rps"] for x in results),
            "p99_ms": statistics.median(x["p99_ms"] for x in results),
            "rounds": results,
        }
        for label, results in rounds.items()
    }
    ceiling = summary["ceiling"]["rps"]
    ratios = {
        "local_of_ceiling": summary["local"]["rps"] / ceiling,
        "local_of_ceiling_bytes": summary["local"]["rps"] / summary["ceiling-bytes"]["rps"],
        "etcd_of_local": summary["etcd"]["rps"] / summary["local"]["rps"],
    }
    if args.baseline_src:
        ratios["local_of_baseline"] = summary["local"]["rps"] / summary["baseline-local"]["rps"]
        ratios["etcd_of_baseline"] = summary["etcd"]["rps"] / summary["baseline-etcd"]["rps"]
    report = {
        "path": PATH,
        "tools": TOOLS,
        "connections": args.connections,
        "duration_s": args.duration,
        "repeat": args.repeat,
        "etcd_members": args.etcd_members,
        "baseline_src": str(args.baseline_src) if args.baseline_src else None,
        "targets": summary,
        "ratios": ratios,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    print(f"GET {PATH}, {TOOLS} tools, {args.connections} connections, {args.duration:g} s x {args.repeat} (median)")
    print(f"{'target':>16} | {'req/s':>8} | {'p99 ms':>7} | {'of ceiling':>10}")
    for label, row in summary.items():
        print(f"{label:>16} | {row['rps']:8.0f} | {row['p99_ms']:7.1f} | {row['rps'] / ceiling:10.2f}")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
