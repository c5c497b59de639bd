"""How a step's overhead grows: with history, with files written, with a large input, with instances.

    python3 bench/growth.py [--quick] [--input-mb 1024]

Each case runs real git on real bare remotes in a temporary directory, through in-process
instances (their own SQLite store; several instances share one SQL registry, the local
backend, and one remote). The tool is an in-process stand-in for a container that times
its own work, so a step's **overhead** is its duration (the ``step.finished`` event) minus
the tool's time: what MAO adds around the work. Cases:

- **history**: a one-step merge pipeline on a dataset with 1 and with 1,000 earlier commits;
- **files**: a step writing 1, 1,000 and 10,000 new files;
- **input**: a step reading an input dataset of about 1 GB (``--input-mb``) against one
  reading a small input: the first step (clone and view written) and the next ones
  (ground-truth of the input moved by one small file each time);
- **instances**: 1, 3 and 5 instances running the same step on one dataset at once.

Prints a table and writes ``bench/results/growth.json``. Figures are medians over a few
steps on a shared machine: indicative, compare within a case.
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mao.config import Settings  # noqa: E402
from mao.events import StepFinished  # noqa: E402
from mao.executor.fake import FakeExecutor  # noqa: E402
from mao.instance import Instance  # noqa: E402
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn  # noqa: E402
from mao.registry.local import LocalRegistry  # noqa: E402
from mao.status import RunStatus  # noqa: E402
from mao.store.db import make_engine  # noqa: E402
from mao.store.store import Store  # noqa: E402

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, input=input, capture_output=True, check=True)
    return done.stdout.decode()


def bare(path: Path) -> Path:
    git("init", "-q", "--bare", "--initial-branch=ground-truth", str(path))
    return path


def fill_history(remote: Path, commits: int) -> None:
    """``commits`` commits on ground-truth, each adding a row to rows.csv (git fast-import)."""
    stream, rows = [], ""
    for i in range(commits):
        rows += f"earlier,{i}\n"
        data = rows.encode()
        message = f"earlier {i}\n".encode()
        stream += [
            b"commit refs/heads/ground-truth\n",
            f"committer bench <bench@localhost> {946684800 + i} +0000\n".encode(),
            f"data {len(message)}\n".encode() + message,
            f"M 644 inline rows.csv\ndata {len(data)}\n".encode() + data + b"\n",
        ]
    git("fast-import", "--quiet", cwd=remote, input=b"".join(stream))


def fill_input(remote: Path, megabytes: int, parts: int = 64) -> None:
    """About ``megabytes`` MB of incompressible files on ground-truth (``parts`` files,
    ``part-NN.bin``), stored uncompressed and served without delta search."""
    size = megabytes * 1024 * 1024 // parts
    proc = subprocess.Popen(
        ["git", "-c", "core.compression=0", "-c", "pack.compression=0", "fast-import", "--quiet"],
        cwd=remote,
        env=GIT_ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    proc.stdin.write(
        b"commit refs/heads/ground-truth\ncommitter bench <bench@localhost> 946684800 +0000\ndata 6\ninput\n"
    )
    chunk = 1024 * 1024
    for i in range(parts):
        proc.stdin.write(f"M 644 inline part-{i:02d}.bin\ndata {size}\n".encode())
        for left in range(size, 0, -chunk):
            proc.stdin.write(os.urandom(min(chunk, left)))
        proc.stdin.write(b"\n")
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    # large random files: no delta search when serving them (as for any repository of large binaries)
    git("config", "core.bigFileThreshold", "1m", cwd=remote)


def add_file(remote: Path, work: Path, name: str, text: str) -> None:
    """One small commit on the input's ground-truth (as another pipeline's merge would be)."""
    if not (work / ".git").exists():
        git("clone", "-q", "--no-checkout", "--branch", "ground-truth", str(remote), str(work))
    git("fetch", "-q", "origin", cwd=work)
    git("read-tree", "origin/ground-truth", cwd=work)  # the index holds every file of ground-truth
    blob = git("hash-object", "-w", "--stdin", cwd=work, input=text.encode()).strip()
    git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", cwd=work)
    tree = git("write-tree", cwd=work).strip()
    commit = git("commit-tree", tree, "-p", "origin/ground-truth", "-m", f"add {name}", cwd=work).strip()
    git("push", "-q", "origin", f"{commit}:refs/heads/ground-truth", cwd=work)


class Timed:
    """Fake tools that time their own work, and the overhead of each finished step."""

    def __init__(self) -> None:
        self.tool_s: dict[tuple[int, str], float] = {}
        self.overheads: list[float] = []
        self.files = 1
        self._lock = threading.Lock()

    def tool(self, work: Callable[..., None]) -> Callable:
        def run(spec, on_log) -> int:
            start = time.perf_counter()
            work(spec, self)
            with self._lock:
                self.tool_s[(spec.run_id, spec.step)] = time.perf_counter() - start
            on_log("done")
            return 0

        return run

    def watch(self, inst: Instance) -> None:
        def finished(event: StepFinished) -> None:
            key = (event.run_id, event.step)
            with self._lock:
                tool = self.tool_s.get(key, 0.0)
                self.overheads.append(event.duration_s - tool)

        inst.events.subscribe(finished, StepFinished)

    def take(self) -> list[float]:
        with self._lock:
            out, self.overheads = self.overheads, []
        return out


def append_row(spec, timed: Timed) -> None:
    with (spec.output_dir / "rows.csv").open("a") as fh:
        fh.write(f"{spec.env['MAO_INSTANCE']},{spec.run_id}\n")


def write_files(spec, timed: Timed) -> None:
    folder = spec.output_dir / f"run-{spec.run_id}"
    folder.mkdir()
    for i in range(timed.files):
        (folder / f"f{i}.txt").write_text(f"{spec.run_id} {i}\n")


def read_input(spec, timed: Timed) -> None:
    count = sum(1 for _ in Path(spec.input_dir).iterdir())
    (spec.output_dir / "summary.txt").write_text(f"{spec.run_id}: {count} input files\n")


TOOLS = {"append": append_row, "files": write_files, "read": read_input}


def make_instance(work: Path, name: str, timed: Timed, registry_store: Store) -> Instance:
    settings = Settings(
        instance_name=name, data_dir=work / name, local_remote_roots=[work], push_retries=5, _env_file=None
    )
    tools = {f"img/{tool}": timed.tool(fn) for tool, fn in TOOLS.items()}
    inst = Instance(settings, registry=LocalRegistry(registry_store), executor=FakeExecutor(tools))
    inst.setup()
    inst.datasets.retry_delay = 0.05
    inst.datasets.git.timeout = 1800  # fetching a large input on a busy machine
    timed.watch(inst)
    return inst


def define(inst: Instance, pipeline: str, tool: str, output: str, input: str | None = None) -> None:
    step = {"name": pipeline, "tool": tool, "output_dataset": output}
    if input:
        step["input_dataset"] = input
    inst.pipelines.init(PipelineIn.model_validate({"name": pipeline, "steps": [step]}))


def register(inst: Instance, datasets: dict[str, Path]) -> None:
    """The tools (once: the registry is shared) and ``datasets``."""
    known = inst.catalog.tools()
    for tool in TOOLS:
        if tool not in known:
            inst.catalog.add_tool(ToolIn(name=tool, image=f"img/{tool}"))
    for name, path in datasets.items():
        inst.catalog.add_dataset(DatasetIn(name=name, body=DatasetBody(master=str(path))))


def run(inst: Instance, pipeline: str) -> None:
    run_id = inst.runner.run_sync(pipeline)
    got = inst.store.get_run(run_id)
    if got.status != RunStatus.SUCCEEDED:
        raise SystemExit(f"{pipeline} on {inst.name}: {got.status}: {got.error}")


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps per case, a 64 MB input")
    parser.add_argument("--input-mb", type=int, default=1024, help="size of the large input dataset")
    parser.add_argument(
        "--only", default="history,files,input,instances", help="cases to run, comma-separated (default: all)"
    )
    args = parser.parse_args()
    cases = set(args.only.split(","))
    steps = 3 if args.quick else 7
    input_mb = 64 if args.quick else args.input_mb
    results: list[dict] = []

    def report(case: str, variant: str, values: list[float], **extra) -> None:
        row = {"case": case, "variant": variant, "steps": len(values), "overhead_ms": median_ms(values), **extra}
        results.append(row)
        more = "  ".join(f"{k} {v}" for k, v in extra.items())
        print(f"{case:<10} {variant:<26} {len(values):>5}  {row['overhead_ms']:>9.1f}  {more}", flush=True)

    print(f"{'case':<10} {'variant':<26} {'steps':>5}  {'overhead':>9}  (ms, median per step)", flush=True)
    with tempfile.TemporaryDirectory(prefix="mao-growth-") as tmp:
        work = Path(tmp)
        registry_store = Store(make_engine(f"sqlite:///{work / 'registry.db'}"))
        registry_store.migrate()
        timed = Timed()
        remotes = {
            name: bare(work / f"{name}.git") for name in ("short", "long", "files", "big", "small", "shared", "out")
        }
        fill_history(remotes["short"], 1)
        fill_history(remotes["long"], 1000)
        a = make_instance(work, "a", timed, registry_store)
        register(a, {name: path for name, path in remotes.items() if name != "shared"})

        # history
        for dataset in ("short", "long") if "history" in cases else ():
            define(a, f"h-{dataset}", "append", dataset)
            run(a, f"h-{dataset}")  # first run: clone and node branch
            timed.take()
            for _ in range(steps):
                run(a, f"h-{dataset}")
            report("history", f"{1 if dataset == 'short' else 1000} earlier commits", timed.take())

        # files written by the step
        define(a, "files", "files", "files")
        run(a, "files")
        timed.take()
        for count in (1, 1000, 10000) if "files" in cases else ():
            timed.files = count
            for _ in range(max(2, steps // 2) if count == 10000 else steps):
                run(a, "files")
            report("files", f"{count} files written", timed.take())

        # a large input dataset
        if "input" in cases:
            input_case(a, work, remotes, timed, steps, input_mb, report, results)
        a.close()
        if "instances" in cases:
            instances_case(work, remotes, timed, registry_store, steps, report)
        registry_store.close()

    out = ROOT / "bench" / "results" / "growth.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    if out.is_file() and cases != {"history", "files", "input", "instances"}:
        kept = [row for row in json.loads(out.read_text())["results"] if row["case"] not in cases]
    meta = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "steps_per_case": steps, "input_mb": input_mb}
    out.write_text(json.dumps({"meta": meta, "results": kept + results}, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


def input_case(
    a: Instance,
    work: Path,
    remotes: dict[str, Path],
    timed: Timed,
    steps: int,
    input_mb: int,
    report: Callable[..., None],
    results: list[dict],
) -> None:
    """A step reading a large input against one reading a small one; then a whole copy, as before."""
    started = time.perf_counter()
    fill_input(remotes["big"], input_mb)
    fill_history(remotes["small"], 1)
    made_s = round(time.perf_counter() - started, 1)
    for dataset in ("small", "big"):
        define(a, f"in-{dataset}", "read", "out", input=dataset)
        first = time.perf_counter()
        run(a, f"in-{dataset}")
        first_s = round(time.perf_counter() - first, 2)
        timed.take()
        changer = work / f"change-{dataset}"
        for i in range(steps):
            add_file(remotes[dataset], changer, f"new-{i}.txt", f"{i}\n")
            run(a, f"in-{dataset}")
        label = f"input {input_mb} MB" if dataset == "big" else "input 1 file"
        extra = {"first_step_s": first_s}
        if dataset == "big":
            extra["generated_s"] = made_s
        report("input", label, timed.take(), **extra)
    # the whole-copy export a step used to make, for comparison
    dest = work / "export"
    started = time.perf_counter()
    a.datasets.snapshot_input("big", str(remotes["big"]), dest)
    export_ms = round((time.perf_counter() - started) * 1000, 1)
    print(f"{'input':<10} {f'whole copy of {input_mb} MB':<26} {1:>5}  {export_ms:>9.1f}  (as each step did before)")
    results.append({"case": "input", "variant": f"whole copy of {input_mb} MB", "steps": 1, "overhead_ms": export_ms})
    subprocess.run(["rm", "-rf", str(dest)], check=False)


def instances_case(
    work: Path, remotes: dict[str, Path], timed: Timed, registry_store: Store, steps: int, report: Callable[..., None]
) -> None:
    """1, 3 and 5 instances running the same step on one dataset at once."""
    instances = [make_instance(work, f"n{i}", timed, registry_store) for i in range(5)]
    register(instances[0], {"shared": remotes["shared"]})
    for inst in instances:
        define(inst, "same", "append", "shared")
    for count in (1, 3, 5):
        group = instances[:count]
        for inst in group:
            run(inst, "same")  # first run of each: clone and node branch
        timed.take()
        walls = []
        for _ in range(steps):
            threads = [threading.Thread(target=run, args=(inst, "same")) for inst in group]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            walls.append(time.perf_counter() - started)
        report("instances", f"{count} at once", timed.take(), round_wall_ms=median_ms(walls))
    rows = git("show", "ground-truth:rows.csv", cwd=remotes["shared"]).splitlines()
    expected = (1 + 3 + 5) * (1 + steps)  # each instance of each group: a first run, then the timed ones
    print(f"(instances: {len(rows)} rows in ground-truth of {expected} appended)", flush=True)
    for inst in instances:
        inst.close()


if __name__ == "__main__":
    sys.exit(main())
