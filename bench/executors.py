"""Benchmark: the same MAO step on each engine, side by side.

    python3 bench/executors.py [--repeat N] [--docker-host URL] [--swarm-host URL] [--slurm-conf FILE] [--json]

One instance per engine (SQLite, in-memory registry, a bare-repository dataset of its own),
each running the same one-step pipeline (the demo tool's ``collect``: a row appended, a
commit, a merge into ``ground-truth``, one push). Repeats alternate the engines, so both see
the same load; each keeps its dataset, so history grows alike. Reported per engine: min /
median / max seconds of a run, from its start to its end, and the ratio of medians against
the local engine (``docker``).

With a Slurm cluster (``--slurm-conf``), the same run on Slurm twice, the job's container run
by the docker CLI against the local engine: with the data on the shared disk (``slurm-shared``)
and with the data by commit through the instance's API (``slurm-commit``); and, as the baseline
of what any Slurm job of this container costs, the same container submitted by hand
(``slurm-by-hand``: ``sbatch --wrap 'docker run --rm ...'`` then ``squeue --json`` every 50 ms
until it ends, without MAO, git or logs), with each Slurm engine's ratio to it.

The engines default to the test services' (``MAO_TEST_DOCKER_HOST``, ``MAO_TEST_SWARM_HOST``,
``MAO_TEST_SLURM_CONF``; ``scripts/services.sh up`` then ``source .run/services.env``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import docker  # noqa: E402
from mao.config import Settings  # noqa: E402
from mao.instance import Instance  # noqa: E402
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn  # noqa: E402
from mao.registry.memory import MemoryRegistry  # noqa: E402

SLURM_ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING"}

IMAGE = "mao/demo-tool:bench"
PIPELINE = {
    "name": "collect",
    "steps": [{"name": "collect", "tool": "demo", "output_dataset": "rows", "cmd": "sh /usr/src/app/tool.sh collect"}],
}


def build_image(url: str) -> None:
    client = docker.DockerClient(base_url=url)
    try:
        base = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
        client.images.build(
            path=str(ROOT / "src/mao/demo"), tag=IMAGE, buildargs={"BASE": base}, rm=True, network_mode="none"
        )
    finally:
        client.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(inst: Instance, port: int) -> object:
    """The instance's API on loopback, for the nodes of data by commit; returns what stops it."""
    import uvicorn

    from mao.api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(instance=inst, background=False), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(30)

    return stop


def slurm_by_hand(work: Path, docker_host: str, slurm_conf: str) -> float:
    """The same container as a bare Slurm job: sbatch, then squeue --json until it ends."""
    env = {"PATH": os.environ["PATH"], "SLURM_CONF": slurm_conf}
    data = work / "by-hand"
    data.mkdir(exist_ok=True)
    wrap = (
        f"docker -H {docker_host} run --rm --network none -v {data}:/usr/src/app/data {IMAGE} "
        "sh /usr/src/app/tool.sh collect"
    )
    started = time.perf_counter()
    job = subprocess.run(
        ["sbatch", "--parsable", "-o", "/dev/null", "--wrap", wrap], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    while True:
        out = subprocess.run(["squeue", "--json"], env=env, capture_output=True, text=True, check=True).stdout
        state = next((j["job_state"] for j in json.loads(out)["jobs"] if str(j["job_id"]) == job), "GONE")
        if state not in SLURM_ACTIVE:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if state != "COMPLETED":
        raise SystemExit(f"slurm-by-hand: job {job} ended {state}")
    return elapsed


def instance(work: Path, name: str, **settings: str) -> Instance:
    remote = work / f"{name}.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    inst = Instance(
        Settings(instance_name=name, data_dir=work / name, pull_policy="never", local_remote_roots=[work], **settings),
        registry=MemoryRegistry(),
    )
    inst.setup()
    inst.catalog.add_tool(ToolIn(name="demo", image=IMAGE))
    inst.catalog.add_dataset(DatasetIn(name="rows", body=DatasetBody(master=str(remote))))
    inst.pipelines.init(PipelineIn.model_validate(PIPELINE))
    return inst


def timed_run(inst: Instance) -> float:
    started = time.perf_counter()
    run = inst.store.get_run(inst.runner.run_sync("collect"))
    elapsed = time.perf_counter() - started
    if run.status != "succeeded":
        raise SystemExit(f"{inst.name}: run {run.id} ended {run.status}: {run.error}")
    return elapsed


def engine_settings(args: argparse.Namespace, exchange_port: int) -> dict[str, dict[str, str]]:
    engines = {
        "docker": {"docker_host": args.docker_host},
        "swarm": {"executor": "swarm", "swarm_host": args.swarm_host},
    }
    if args.slurm_conf:
        slurm = {
            "executor": "slurm",
            "slurm_conf": args.slurm_conf,
            "slurm_container_cli": f"docker -H {args.docker_host}",
        }
        engines["slurm-shared"] = {**slurm, "slurm_data": "shared"}
        engines["slurm-commit"] = {
            **slurm,
            "slurm_data": "commit",
            "exchange_url": f"http://127.0.0.1:{exchange_port}",
        }
    return engines


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """Each engine's run times, the engines interleaved (with the by-hand Slurm job)."""
    exchange_port = free_port()
    engines = engine_settings(args, exchange_port)
    times: dict[str, list[float]] = {name: [] for name in engines}
    if args.slurm_conf:
        times["slurm-by-hand"] = []
    with tempfile.TemporaryDirectory(prefix="mao-bench-exec-") as tmp:
        instances = {name: instance(Path(tmp), f"bench-{name}", **s) for name, s in engines.items()}
        stops = [serve(instances["slurm-commit"], exchange_port)] if "slurm-commit" in instances else []
        try:
            for inst in instances.values():
                timed_run(inst)  # warm-up: clones, first commit
            for _ in range(args.repeat):
                for name, inst in instances.items():
                    times[name].append(timed_run(inst))
                if args.slurm_conf:
                    times["slurm-by-hand"].append(slurm_by_hand(Path(tmp), args.docker_host, args.slurm_conf))
        finally:
            for stop in stops:
                stop()  # type: ignore[operator]
            for inst in instances.values():
                inst.close()
    return times


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    local = statistics.median(times["docker"])
    results = {
        name: {
            "min": round(min(values), 3),
            "median": round(statistics.median(values), 3),
            "max": round(max(values), 3),
            "ratio_to_docker": round(statistics.median(values) / local, 2),
        }
        for name, values in times.items()
    }
    if "slurm-by-hand" in times:
        by_hand = statistics.median(times["slurm-by-hand"])
        for name in ("slurm-shared", "slurm-commit", "slurm-by-hand"):
            results[name]["ratio_to_slurm_by_hand"] = round(statistics.median(times[name]) / by_hand, 2)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--docker-host", default=os.environ.get("MAO_TEST_DOCKER_HOST"))
    parser.add_argument("--swarm-host", default=os.environ.get("MAO_TEST_SWARM_HOST"))
    parser.add_argument("--slurm-conf", default=os.environ.get("MAO_TEST_SLURM_CONF"))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if not args.docker_host or not args.swarm_host:
        parser.error("give --docker-host and --swarm-host (or source .run/services.env)")

    build_image(args.docker_host)
    build_image(args.swarm_host)
    results = summarise(measure(args))
    out = {"repeat": args.repeat, "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"a one-step run, {args.repeat} interleaved repeats, seconds")
        for name, r in results.items():
            by_hand = f"  x{r['ratio_to_slurm_by_hand']} of slurm-by-hand" if "ratio_to_slurm_by_hand" in r else ""
            print(
                f"  {name:13} min {r['min']:.3f}  median {r['median']:.3f}  max {r['max']:.3f}"
                f"  x{r['ratio_to_docker']}{by_hand}"
            )
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "executors.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
