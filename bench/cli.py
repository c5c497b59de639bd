"""Benchmark: start-up time of ``maoctl``, beside a bare Python start.

    python3 bench/cli.py [--repeat 20] [--json] [--baseline-src OTHER_CHECKOUT/src]

Runs, interleaved, ``python3 -c pass`` (the floor), ``maoctl --help`` and
``maoctl runs list --help`` (each as ``python3 -m mao.cli.main …`` from this checkout) and
reports each one's median and minimum wall time over ``--repeat`` runs, and the median
above the floor. ``--baseline-src`` adds the two ``maoctl`` cases run from another
checkout's sources, interleaved with these, for a ratio under the same load. Results go to
``bench/results/cli.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "cli.json"

CASES = {
    "python3 -c pass": [sys.executable, "-c", "pass"],
    "maoctl --help": [sys.executable, "-m", "mao.cli.main", "--help"],
    "maoctl runs list --help": [sys.executable, "-m", "mao.cli.main", "runs", "list", "--help"],
}


def once(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one run."""
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--baseline-src", help="another checkout's src directory to compare with")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "100"}
    cases = {name: (argv, env) for name, argv in CASES.items()}
    if args.baseline_src:
        other = {**env, "PYTHONPATH": str(Path(args.baseline_src).resolve())}
        cases |= {f"{name} (baseline)": (argv, other) for name, argv in CASES.items() if name.startswith("maoctl")}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for argv, case_env in cases.values():  # warm the file cache and the bytecode
        once(argv, case_env)
    for _ in range(args.repeat):
        for name, (argv, case_env) in cases.items():
            times[name].append(once(argv, case_env))
    floor = statistics.median(times["python3 -c pass"])
    rows = [
        {
            "case": name,
            "median_s": round(statistics.median(values), 4),
            "min_s": round(min(values), 4),
            "above_python_s": round(statistics.median(values) - floor, 4),
        }
        for name, values in times.items()
    ]
    document = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "repeat": args.repeat, "results": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    print(f"{'case':<37} {'median s':>9} {'min s':>7} {'above python':>13}")
    for row in rows:
        print(f"{row['case']:<37} {row['median_s']:>9.3f} {row['min_s']:>7.3f} {row['above_python_s']:>13.3f}")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
