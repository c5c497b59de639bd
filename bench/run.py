"""Benchmark: a MAO pipeline step against the same work done by hand.

    scripts/bench [--repeat N]

Baseline, measured in the same run: ``docker run`` of the tool on a git clone, then
``git add``, ``git commit`` and ``git push``. MAO does the same work plus what makes it
MAO: provenance trailers, the run record and logs, the node branch in the registry, and
the locked merge into ``ground-truth`` with its push. Reported as ratios (MAO / raw).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mao.config import Settings  # noqa: E402
from mao.instance import Instance  # noqa: E402
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn  # noqa: E402
from mao.pipelines import init_pipeline  # noqa: E402

IMAGE = "mao/demo-tool:bench"
CMD = ["sh", "/usr/src/app/tool.sh", "collect"]


def sh(*args: str, cwd: Path | None = None, env: dict | None = None) -> None:
    subprocess.run(list(args), cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def bare(path: Path) -> Path:
    sh("git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path))
    return path


def raw_steps(work: Path, steps: int, docker_env: dict) -> float:
    """The same work by hand: clone, then per step docker run + git add/commit/push."""
    remote = bare(work / "raw.git")
    clone = work / "raw"
    sh("git", "clone", "-q", str(remote), str(clone))
    git_env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}
    sh("git", "checkout", "-q", "-b", "raw-node", cwd=clone)
    start = time.perf_counter()
    for i in range(steps):
        sh("docker", "run", "--rm", "--network", "none", "-v", f"{clone}:/usr/src/app/data", IMAGE, *CMD, env=docker_env)
        sh("git", "add", "-A", cwd=clone, env=git_env)
        sh("git", "commit", "-q", "-m", f"step {i}", cwd=clone, env=git_env)
        sh("git", "push", "-q", "origin", "raw-node", cwd=clone, env=git_env)
    return time.perf_counter() - start


def mao_steps(work: Path, steps: int, docker_host: str | None) -> tuple[float, str]:
    remote = bare(work / "mao.git")
    settings = Settings(instance_name="bench", data_dir=work / "data", docker_host=docker_host, pull_policy="never")
    inst = Instance(settings)
    inst.setup()
    try:
        inst.catalog.add_tool(ToolIn(name="demo", image=IMAGE))
        inst.catalog.add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(remote))))
        init_pipeline(inst, PipelineIn.model_validate({"name": "bench", "steps": [
            {"name": f"s{i}", "tool": "demo", "output_dataset": "out", "cmd": CMD} for i in range(steps)]}))
        engine = inst.executor.ping()
        start = time.perf_counter()
        run = inst.store.get_run(inst.runner.run_sync("bench"))
        elapsed = time.perf_counter() - start
        if run.status != "succeeded":
            raise SystemExit(f"benchmark run failed: {run.error}")
        return elapsed, f"{engine.get('engine')} {engine.get('version')}"
    finally:
        inst.close()


def measure(steps: int, repeat: int, docker_host: str | None) -> dict:
    docker_env = {**os.environ}
    if docker_host:
        docker_env["DOCKER_HOST"] = docker_host
    raws, maos, engine = [], [], ""
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="mao-bench-") as tmp:
            raws.append(raw_steps(Path(tmp), steps, docker_env))
        with tempfile.TemporaryDirectory(prefix="mao-bench-") as tmp:
            elapsed, engine = mao_steps(Path(tmp), steps, docker_host)
            maos.append(elapsed)
    raw, mao = statistics.median(raws), statistics.median(maos)
    return {"steps": steps, "repeat": repeat, "raw_s": round(raw, 3), "mao_s": round(mao, 3),
            "ratio": round(mao / raw, 2), "engine": engine}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--docker-host", default=os.environ.get("MAO_DOCKER_HOST") or os.environ.get("DOCKER_HOST"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not shutil.which("docker"):
        raise SystemExit("the docker CLI is needed for the baseline")
    env = {**os.environ, **({"DOCKER_HOST": args.docker_host} if args.docker_host else {})}
    base = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
    sh("docker", "build", "-q", "--build-arg", f"BASE={base}", "-t", IMAGE, str(ROOT / "src/mao/demo"),
       env={**env, "DOCKER_BUILDKIT": "0"})
    results = [measure(1, args.repeat, args.docker_host), measure(10, max(1, args.repeat // 2), args.docker_host)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"engine: {results[0]['engine']}  (median of repeats; ratio = MAO / raw docker run + git commit + git push)")
    print(f"{'pipeline':<10} {'repeats':>7} {'raw s':>8} {'MAO s':>8} {'ratio':>6}")
    for r in results:
        print(f"{str(r['steps']) + '-step':<10} {r['repeat']:>7} {r['raw_s']:>8.3f} {r['mao_s']:>8.3f} {r['ratio']:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
