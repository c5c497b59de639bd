"""Benchmark: the same MAO step on each engine, side by side.

    python3 bench/executors.py [--repeat N] [--docker-host URL] [--swarm-host URL] [--json]

One instance per engine (SQLite, in-memory registry, a bare-repository dataset of its own),
each running the same one-step pipeline (the demo tool's ``collect``: a row appended, a
commit, a merge into ``ground-truth``, one push). Repeats alternate the engines, so both see
the same load; each keeps its dataset, so history grows alike. Reported per engine: min /
median / max seconds of a run, from its start to its end, and the ratio of medians against
the local engine (``docker``).

The engines default to the test services' (``MAO_TEST_DOCKER_HOST``, ``MAO_TEST_SWARM_HOST``;
``scripts/services.sh up`` then ``source .run/services.env``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import docker  # noqa: E402
from mao.config import Settings  # noqa: E402
from mao.instance import Instance  # noqa: E402
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn  # noqa: E402
from mao.registry.memory import MemoryRegistry  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--docker-host", default=os.environ.get("MAO_TEST_DOCKER_HOST"))
    parser.add_argument("--swarm-host", default=os.environ.get("MAO_TEST_SWARM_HOST"))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if not args.docker_host or not args.swarm_host:
        parser.error("give --docker-host and --swarm-host (or source .run/services.env)")

    engines = {
        "docker": {"docker_host": args.docker_host},
        "swarm": {"executor": "swarm", "swarm_host": args.swarm_host},
    }
    build_image(args.docker_host)
    build_image(args.swarm_host)
    times: dict[str, list[float]] = {name: [] for name in engines}
    with tempfile.TemporaryDirectory(prefix="mao-bench-exec-") as tmp:
        instances = {name: instance(Path(tmp), f"bench-{name}", **s) for name, s in engines.items()}
        try:
            for inst in instances.values():
                timed_run(inst)  # warm-up: clones, first commit
            for _ in range(args.repeat):
                for name, inst in instances.items():
                    times[name].append(timed_run(inst))
        finally:
            for inst in instances.values():
                inst.close()

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
    out = {"repeat": args.repeat, "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"a one-step run, {args.repeat} interleaved repeats, seconds")
        for name, r in results.items():
            print(
                f"  {name:7} min {r['min']:.3f}  median {r['median']:.3f}  max {r['max']:.3f}  x{r['ratio_to_docker']}"
            )
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "executors.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
