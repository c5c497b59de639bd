"""Benchmark: how soon after its slot a scheduled fire is recorded, with many schedules.

    python3 bench/scheduler.py [--sizes 200,1000] [--minutes 1,2] [--store-url URL]

For each size N, an instance of its own (SQLite in a temporary directory unless
``--store-url`` names a PostgreSQL database, the local registry, a fake executor whose tool
writes one file, one bare-repository dataset) gets N pipelines scheduled ``* * * * *``, is
started as ``maoctl serve`` starts it (recovery, scheduler, heartbeat, background loops),
and is watched over the given number of minute boundaries. The runs it executes meanwhile
(git clone, commit, push, merge: the real dataset path) are the load the fires compete with.

Measured per size, from the store: for each fire (pipeline × minute boundary) the run
record's ``created_at`` minus its slot (p50 / p99 / max seconds), fires with no run recorded,
and, from the ``schedule.fired`` events, fires skipped and queued. Results go to
``bench/results/scheduler.json``; a table is printed. About 4 minutes for the defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mao.lifecycle import start_background, stop_background  # noqa: E402

from mao.config import Settings  # noqa: E402
from mao.executor.fake import FakeExecutor  # noqa: E402
from mao.instance import Instance  # noqa: E402
from mao.models import DatasetBody, DatasetIn, ToolIn  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scheduler.json"
SETUP_MARGIN = 15.0
"""Seconds the instance is started before the first minute boundary it is measured on
(its start-up work, e.g. publishing a thousand schedules, is not what is measured)."""
SETTLE = 20.0
"""Seconds after the last measured boundary to wait for its records (well before the next one)."""


def tool(spec: Any, on_log: Any) -> int:
    (spec.output_dir / f"{spec.pipeline}.txt").write_text(f"{spec.run_id}\n")
    return 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def build(work: Path, size: int, store_url: str | None) -> Instance:
    settings = Settings(instance_name="bench", data_dir=work / "data", store_url=store_url)
    instance = Instance(settings, executor=FakeExecutor({"img": tool}))
    instance.setup()
    remote = settings.bare_repos_dir / "out.git"
    remote.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    instance.catalog.add_tool(ToolIn(name="t", image="img"))
    instance.catalog.add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(remote))))
    for number in range(size):
        name = f"p{number:04d}"
        # each pipeline its own step name: its own node branch of the one dataset
        steps = [{"name": f"s{number:04d}", "tool": "t", "output_dataset": "out"}]
        instance.store.add_pipeline(name, "", steps)
        instance.scheduler.schedule(name, "* * * * *")
    return instance


def next_boundary(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


def measure(size: int, minutes: int, store_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mao-bench-sched-") as tmp:
        started = time.monotonic()
        instance = build(Path(tmp), size, store_url)
        setup_s = time.monotonic() - started
        fired: dict[str | None, Counter[str]] = {}
        lock = threading.Lock()

        def on_fired(event: Any) -> None:
            with lock:
                fired.setdefault(event.data.get("slot"), Counter())[event.data.get("outcome", "?")] += 1

        instance.events.subscribe(on_fired, kinds=["schedule.fired"])
        first = next_boundary(datetime.now(UTC))
        if (first - datetime.now(UTC)).total_seconds() < SETUP_MARGIN:
            first += timedelta(minutes=1)
        slots = [first + timedelta(minutes=m) for m in range(minutes)]
        for job in instance.scheduler._scheduler.get_jobs():  # a boundary passed while setting up is no catch-up
            if job.next_run_time < first:
                instance.scheduler._scheduler.modify_job(job.id, next_run_time=first)
        wait = (first - datetime.now(UTC)).total_seconds() - SETUP_MARGIN
        if wait > 0:
            time.sleep(wait)
        start_background(instance)
        try:
            end = slots[-1] + timedelta(seconds=SETTLE)
            time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
        finally:
            stop_background(instance)
        wanted = {slot.strftime("%Y-%m-%dT%H:%M:%SZ"): slot for slot in slots}
        runs = instance.store.list_runs(limit=size * (minutes + 2))
        statuses = Counter(r.status for r in runs if r.trigger == "cron")
        per_slot = []
        for text, slot in wanted.items():
            recorded = [r for r in runs if r.trigger == "cron" and r.slot == text]
            delays = [(as_utc(r.created_at) - slot).total_seconds() for r in recorded]
            per_slot.append(
                {
                    "slot": text,
                    "fires": size,
                    "recorded": len(recorded),
                    "record_lag_p50_s": percentile(delays, 0.50),
                    "record_lag_p99_s": percentile(delays, 0.99),
                    "record_lag_max_s": max(delays) if delays else None,
                    "outcomes": dict(fired.get(text, {})),
                }
            )
        instance.close()
    return {
        "pipelines": size,
        "minutes": minutes,
        "slots": per_slot,
        "run_statuses": dict(statuses),
        "setup_s": round(setup_s, 1),
    }


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200,1000", help="pipelines per scenario, comma-separated")
    parser.add_argument("--minutes", default="1,2", help="minute boundaries measured per scenario, comma-separated")
    parser.add_argument("--store-url", default=None, help="a PostgreSQL URL instead of SQLite (emptied first: no)")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the JSON results")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    minutes = [int(m) for m in args.minutes.split(",")]
    if len(minutes) == 1:
        minutes *= len(sizes)
    if len(minutes) != len(sizes):
        parser.error("give one --minutes value, or one per size")
    logging.basicConfig(level=logging.ERROR)
    results = [measure(size, mins, args.store_url) for size, mins in zip(sizes, minutes, strict=True)]
    header = (
        f"{'pipelines':>9} {'minute':>6} {'fires':>6} {'recorded':>8} {'p50 s':>6} {'p99 s':>6} {'max s':>6}  outcomes"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        for minute, row in enumerate(r["slots"], 1):
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items())) or "(no events)"
            print(
                f"{r['pipelines']:>9} {minute:>6} {row['fires']:>6} {row['recorded']:>8} "
                f"{fmt(row['record_lag_p50_s']):>6} {fmt(row['record_lag_p99_s']):>6} "
                f"{fmt(row['record_lag_max_s']):>6}  {outcomes}"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{platform.node()} ({platform.machine()}, {platform.python_version()})",
        "store": "postgresql" if args.store_url else "sqlite",
        "results": results,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
