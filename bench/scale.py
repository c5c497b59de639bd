"""Cost growth beside raw git and git-annex: a 1 GB dataset, 10,000 earlier commits, 10,000 files.

    python3 bench/scale.py [--quick] [--gb 1] [--only large,history,files] [--repeat 3] [--json]

Each case runs MAO and the same work done with git (and git-annex) by hand in the same run,
in interleaved rounds (the side that goes first alternates), and reports the median of each
side and their ratio (MAO / by hand). MAO is an in-process ``Instance`` (its own SQLite
store; the instances of the run share one local registry) whose ``FakeExecutor`` runs the
tool as a Python function writing into the step's output directory: no container engine.
By hand, the same function writes into the clone. Each side has a remote of its own, a copy
of the same starting state: bare repositories over SSH when ``MAO_TEST_SSH_URL_BASE``,
``MAO_TEST_SSH_KEY_DIR`` and ``MAO_TEST_SSH_REPO_ROOT`` are set (``source
.run/services.env``), else local bare repositories in a temporary directory (cloned by hand
with ``--no-local``: a local clone would hard-link the remote's objects, which no remote
allows). By hand, git runs in the environment MAO's git runs with (identity, SSH command
and its options, forced settings), with commits unsigned and git's automatic maintenance
off (MAO runs it every 20th commit).

- **large**: a dataset of about 1 GB (``--gb``) in 32 files of equal size, in plain git
  (stored and served as growth.py's ``fill_input`` makes its input) and annexed (``annex:
  {largefiles: "largerthan=1mb"}``, unlocked files whose content is in the remote's annex).
  The step reads ``part-00.bin`` from its input view of the dataset (``input_paths``) and
  replaces another file of it with new content of the same size; input and output are the
  same dataset, a one-step merge pipeline.

  a) **first step** on a fresh instance: clone, node worktree, input view, the tool, commit,
     content to the remote (annexed), merge into ``ground-truth``, one push. By hand:
     ``git clone``, the tool, ``git add``, ``git commit`` (on ``ground-truth``: no node
     branch, no merge commit), ``git push`` (plain); the same with ``git annex init``
     (``annex.thin``, and ``annex.addunlocked`` as MAO's files are unlocked) and ``git annex
     get part-00.bin`` after the clone, ``git annex add`` instead of ``git add``, ``git annex
     copy --to origin`` before the push and ``git annex sync --only-annex`` after it
     (annexed). A fresh instance and a fresh clone every round.
  b) **one file changed**: the same step again on the last instance and clone (by hand
     with a ``git fetch`` first).
  c) **disk**: the dataset's directory on the instance (clone, worktree, input view) against
     the hand clone, after a) and b); each remote's git history (outside ``annex/``) and
     annex.
- **history**: a one-step merge pipeline appending a row to ``rows.csv`` of a dataset with 1
  and with 10,000 (``--commits``) earlier commits. By hand: ``git fetch``, the row written,
  ``git add -A``, ``git commit`` on a node branch, ``git merge --no-ff`` into
  ``ground-truth`` (in a worktree of its own, sparse: only top-level files are written
  there, as MAO's merge writes none) and one ``git push --atomic`` of both branches.
- **files**: a step writing 10,000 new files (``--files``), against the same git commands.

The first step of history and files (clone, node branch, one file written) is not timed.
Columns: rounds, medians by hand and MAO (seconds, or MB for disk), their ratio, the ratio
without the tool's own time on each side (what is around the tool), and the git processes
MAO started per step. Prints a table (``--json``: JSON) and writes
``bench/results/scale.json`` (rows of the cases not run are kept). ``--quick`` (64 MB,
1,000 commits, 1,000 files, 2 rounds) is for trying the script.
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
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from annex import du, history_bytes  # noqa: E402
from growth import GIT_ENV, Timed, append_row, bare, fill_input, write_files  # noqa: E402

from mao.config import Settings  # noqa: E402
from mao.datasets.annex import largefiles_line  # noqa: E402
from mao.executor.fake import FakeExecutor  # noqa: E402
from mao.instance import Instance  # noqa: E402
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn  # noqa: E402
from mao.registry.local import LocalRegistry  # noqa: E402
from mao.status import RunStatus  # noqa: E402
from mao.store.db import make_engine  # noqa: E402
from mao.store.store import Store  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scale.json"
CASES = ("large", "history", "files")
MB = 1024 * 1024
RULE = "largerthan=1mb"
PARTS = 32  # files of the large dataset
READ = "part-00.bin"  # the one file its step reads


# ---------------------------------------------------------------------------- helpers


def rmtree(path: Path) -> None:
    """Remove ``path``, annexed content (read-only directories) included."""
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else "?"


def fill_rows(remote: Path, commits: int) -> None:
    """``commits`` commits on ground-truth, each adding a row to rows.csv: the history of
    growth.py's ``fill_history``, streamed to ``git fast-import`` (10,000 commits would
    otherwise hold every version of the file in memory at once)."""
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=remote, env=GIT_ENV, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    rows = bytearray()
    for i in range(commits):
        rows += f"earlier,{i}\n".encode()
        message = f"earlier {i}\n".encode()
        proc.stdin.write(
            b"commit refs/heads/ground-truth\n"
            + f"committer bench <bench@localhost> {946684800 + i} +0000\n".encode()
            + f"data {len(message)}\n".encode()
            + message
            + f"M 644 inline rows.csv\ndata {len(rows)}\n".encode()
            + bytes(rows)
            + b"\n"
        )
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")


def random_file(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        for left in range(size, 0, -MB):
            fh.write(os.urandom(min(MB, left)))


def replace_part(source: Path, dest: Path, index: int, size: int) -> None:
    """The large case's tool: read ``part-00.bin`` of ``source`` whole, write ``part-<index>.bin``
    of ``dest`` anew (removed first: an annexed file shares its inode with the annex)."""
    with (source / READ).open("rb") as fh:
        while fh.read(MB):
            pass
    target = dest / f"part-{index:02d}.bin"
    target.unlink(missing_ok=True)
    random_file(target, size)


class Work(Timed):
    """growth.py's timed tools, with the sizes of this run."""

    def __init__(self, part_bytes: int, files: int) -> None:
        super().__init__()
        self.part_bytes = part_bytes
        self.files = files


def read_and_replace(spec: Any, work: Work) -> None:
    replace_part(Path(spec.input_dir), Path(spec.output_dir), 1 + spec.run_id % (PARTS - 1), work.part_bytes)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- remotes


class Remotes:
    """Bare repositories: under the SSH git server's root when it is configured, else local."""

    def __init__(self, work: Path) -> None:
        base, keys, root = (os.environ.get(f"MAO_TEST_SSH_{k}") for k in ("URL_BASE", "KEY_DIR", "REPO_ROOT"))
        self.ssh = bool(base and keys and root)
        self.key_dir = Path(keys) if self.ssh and keys else None
        tag = f"bench-scale-{uuid.uuid4().hex[:8]}"
        self.root = Path(root) / tag if self.ssh and root else work / "remotes"
        self.base = f"{(base or '').rstrip('/')}/{tag}" if self.ssh else str(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        if self.ssh:
            return f"bare repositories over SSH ({self.base})"
        return f"local bare repositories in a temporary directory ({self.root})"

    def make(self, name: str) -> Path:
        return bare(self.root / f"{name}.git")

    def path(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}.git"

    def copy(self, source: str, dest: str) -> None:
        subprocess.run(["cp", "-a", str(self.path(source)), str(self.path(dest))], check=True)

    def remove(self) -> None:
        rmtree(self.root)


# ---------------------------------------------------------------------------- MAO's side


class Mao:
    """In-process instances sharing one local registry; the tools of this benchmark."""

    def __init__(self, work: Path, remotes: Remotes, tools: Work) -> None:
        self.work = work
        self.remotes = remotes
        self.timed = tools
        self.registry = Store(make_engine(f"sqlite:///{work / 'registry.db'}"))
        self.registry.migrate()
        self.tools = {
            "img/big": tools.tool(read_and_replace),
            "img/append": tools.tool(append_row),
            "img/files": tools.tool(write_files),
        }
        self.open: list[Instance] = []

    def instance(self, name: str) -> Instance:
        settings = Settings(
            instance_name=name,
            data_dir=self.work / name,
            local_remote_roots=[self.remotes.root],
            ssh_key_dir=self.remotes.key_dir,
            push_retries=5,
            _env_file=None,
        )
        inst = Instance(settings, registry=LocalRegistry(self.registry), executor=FakeExecutor(self.tools))
        inst.setup()
        inst.datasets.retry_delay = 0.05
        inst.datasets.git.timeout = 3600  # a 1 GB clone on a busy machine
        self.timed.watch(inst)
        known = inst.catalog.tools()
        for tool in ("big", "append", "files"):
            if tool not in known:
                inst.catalog.add_tool(ToolIn(name=tool, image=f"img/{tool}"))
        self.open.append(inst)
        return inst

    def drop(self, inst: Instance) -> None:
        inst.close()
        self.open.remove(inst)
        rmtree(inst.settings.data_dir)

    def register(self, inst: Instance, dataset: str, annexed: bool = False) -> None:
        body: dict[str, Any] = {"master": self.remotes.url(dataset)}
        if annexed:
            body["annex"] = {"largefiles": RULE}
        inst.catalog.add_dataset(DatasetIn(name=dataset, body=DatasetBody.model_validate(body)))

    @staticmethod
    def define(inst: Instance, pipeline: str, tool: str, output: str, reads: str | None = None) -> None:
        step: dict[str, Any] = {"name": pipeline, "tool": tool, "output_dataset": output}
        if reads:
            step |= {"input_dataset": reads, "input_paths": [READ]}
        inst.pipelines.init(PipelineIn.model_validate({"name": pipeline, "steps": [step]}))

    def step(self, inst: Instance, pipeline: str) -> dict[str, float]:
        """One run of ``pipeline``: its wall time, the tool's time, the git processes it started."""
        git = inst.datasets.git
        processes = git.processes
        started = time.perf_counter()
        run_id = inst.runner.run_sync(pipeline)
        wall = time.perf_counter() - started
        run = inst.store.get_run(run_id)
        if run.status != RunStatus.SUCCEEDED:
            raise SystemExit(f"{pipeline} on {inst.name}: {run.status}: {run.error}")
        self.timed.take()
        tool = self.timed.tool_s.pop((run_id, pipeline), 0.0)
        return {"wall": wall, "tool": tool, "git": git.processes - processes}

    def close(self) -> None:
        for inst in list(self.open):
            inst.close()
        self.registry.close()


# ---------------------------------------------------------------------------- by hand


class Hand:
    """git and git-annex on the command line, in the environment MAO's git runs with (``env``:
    identity, SSH command, forced settings), without signing and without git's automatic
    maintenance."""

    def __init__(self, env: dict[str, str]) -> None:
        env = dict(env)
        count = int(env.pop("GIT_CONFIG_COUNT", "0"))
        config = {env.pop(f"GIT_CONFIG_KEY_{i}"): env.pop(f"GIT_CONFIG_VALUE_{i}") for i in range(count)}
        for key in ("gpg.format", "user.signingKey"):
            config.pop(key, None)
        config |= {"commit.gpgsign": "false", "maintenance.auto": "false"}
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        env |= {"GIT_AUTHOR_NAME": "bench", "GIT_COMMITTER_NAME": "bench"}
        env["GIT_ANNEX_USE_GIT_SSH"] = "1"  # git-annex over GIT_SSH_COMMAND, as MAO runs it
        self.env = env

    def git(self, *args: str, cwd: Path | None = None) -> None:
        done = subprocess.run(["git", *args], cwd=cwd, env=self.env, capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"by hand: git {' '.join(args)} failed in {cwd}: {done.stderr.decode()[-1500:]}")

    # the large case -------------------------------------------------------------------

    def first(self, url: str, clone: Path, annexed: bool, part_bytes: int) -> dict[str, float]:
        """A fresh clone, then the step: wall time and the tool's."""
        started = time.perf_counter()
        self.git("clone", "--quiet", "--no-local", "--branch", "ground-truth", url, str(clone))
        if annexed:
            self.git("annex", "init", "--quiet", "by hand", cwd=clone)
            self.git("config", "annex.thin", "true", cwd=clone)
            self.git("config", "annex.addunlocked", "true", cwd=clone)
        tool = self._change(clone, annexed, 1, part_bytes)
        return {"wall": time.perf_counter() - started, "tool": tool}

    def change(self, clone: Path, annexed: bool, index: int, part_bytes: int) -> dict[str, float]:
        """The step again in the clone of :meth:`first` (``git fetch`` first)."""
        started = time.perf_counter()
        self.git("fetch", "--quiet", "origin", cwd=clone)
        tool = self._change(clone, annexed, index, part_bytes)
        return {"wall": time.perf_counter() - started, "tool": tool}

    def _change(self, clone: Path, annexed: bool, index: int, part_bytes: int) -> float:
        name = f"part-{index:02d}.bin"
        if annexed:
            self.git("annex", "get", "--quiet", READ, cwd=clone)
        tool = timed(lambda: replace_part(clone, clone, index, part_bytes))
        self.git(*(["annex", "add", "--quiet"] if annexed else ["add"]), name, cwd=clone)
        self.git("commit", "--quiet", "-m", f"replace {name}", cwd=clone)
        if annexed:
            self.git("annex", "copy", "--quiet", "--to", "origin", name, cwd=clone)
        self.git("push", "--quiet", "origin", "ground-truth", cwd=clone)
        if annexed:
            self.git("annex", "sync", "--quiet", "--only-annex", "--no-content", "origin", cwd=clone)
        return tool


class HandMerge:
    """By hand, a merge pipeline's step: a clone on branch ``node`` where the tool writes, and
    a sparse worktree of ``ground-truth`` that the node branch is merged into."""

    def __init__(self, hand: Hand, url: str, where: Path) -> None:
        self.hand = hand
        self.clone = where / "clone"
        self.gt = where / "ground-truth"
        self.count = 0
        git = hand.git
        git("clone", "--quiet", "--no-local", "--branch", "ground-truth", url, str(self.clone))
        git("checkout", "--quiet", "-b", "node", cwd=self.clone)
        git("worktree", "add", "--quiet", "--no-checkout", str(self.gt), "ground-truth", cwd=self.clone)
        git("sparse-checkout", "set", "--cone", cwd=self.gt)  # no directory: top-level files only
        git("reset", "--quiet", "--hard", cwd=self.gt)

    def step(self, tool: Callable[..., None], work: Work) -> dict[str, float]:
        self.count += 1
        git = self.hand.git
        spec = SimpleNamespace(output_dir=self.clone, run_id=f"hand-{self.count}", env={"MAO_INSTANCE": "hand"})
        started = time.perf_counter()
        git("fetch", "--quiet", "origin", cwd=self.clone)
        tool_s = timed(lambda: tool(spec, work))
        git("add", "-A", cwd=self.clone)
        git("commit", "--quiet", "-m", f"step {self.count}", cwd=self.clone)
        git("merge", "--quiet", "--no-ff", "-m", f"merge step {self.count}", "node", cwd=self.gt)
        git("push", "--quiet", "--atomic", "origin", "node", "ground-truth", cwd=self.clone)
        return {"wall": time.perf_counter() - started, "tool": tool_s}


# ---------------------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.repeat = args.repeat
        self.part_bytes = args.mb * MB // PARTS
        self.megabytes = args.mb
        self.commits = args.commits
        self.files = args.files
        self.remotes = Remotes(work)
        self.tools = Work(self.part_bytes, self.files)
        self.mao = Mao(work / "mao", self.remotes, self.tools)
        self.a = self.mao.instance("a")  # registers the datasets; runs the history and files cases
        self.hand = Hand(self.a.datasets.git.env)
        self.rows: list[dict[str, Any]] = []
        self.quiet = args.json

    # reporting ----------------------------------------------------------------------------

    def header(self) -> None:
        if not self.quiet:
            print(f"remotes: {self.remotes.describe()}", flush=True)
            print(
                f"{'case':<8} {'variant':<40} {'n':>2} {'by hand':>9} {'MAO':>9} {'ratio':>6}"
                f"  {'w/o tool':>8}  {'MAO git/step':>12}",
                flush=True,
            )

    def timing(self, case: str, variant: str, hand: list[dict[str, float]], mao: list[dict[str, float]]) -> None:
        h, m = median([r["wall"] for r in hand]), median([r["wall"] for r in mao])
        ht, mt = median([r["tool"] for r in hand]), median([r["tool"] for r in mao])
        row = {
            "case": case,
            "variant": variant,
            "unit": "s",
            "rounds": len(mao),
            "by_hand": round(h, 3),
            "mao": round(m, 3),
            "ratio": round(m / h, 2) if h else None,
            "ratio_without_tool": round((m - mt) / (h - ht), 2) if h > ht else None,
            "tool_by_hand": round(ht, 3),
            "tool_mao": round(mt, 3),
            "mao_git_processes": median([r["git"] for r in mao]),
            "by_hand_s": [round(r["wall"], 3) for r in hand],
            "mao_s": [round(r["wall"], 3) for r in mao],
        }
        self.rows.append(row)
        if not self.quiet:
            print(
                f"{case:<8} {variant + ' (s)':<40} {len(mao):>2} {h:>9.3f} {m:>9.3f} {row['ratio']:>6.2f}"
                f"  {row['ratio_without_tool'] or float('nan'):>8.2f}  {row['mao_git_processes']:>12g}",
                flush=True,
            )

    def size(self, case: str, variant: str, hand: int, mao: int) -> None:
        row = {
            "case": case,
            "variant": variant,
            "unit": "MB",
            "by_hand": round(hand / MB, 1),
            "mao": round(mao / MB, 1),
            "ratio": round(mao / hand, 2) if hand else None,
        }
        self.rows.append(row)
        if not self.quiet:
            ratio = f"{row['ratio']:>6.2f}" if row["ratio"] is not None else f"{'-':>6}"
            print(f"{case:<8} {variant + ' (MB)':<40} {'':>2} {row['by_hand']:>9.1f} {row['mao']:>9.1f} {ratio}")

    def rounds(self, mao: Callable[[], dict[str, float]], hand: Callable[[], dict[str, float]]) -> tuple[list, list]:
        """``repeat`` interleaved rounds, the side that goes first alternating."""
        by_mao: list[dict[str, float]] = []
        by_hand: list[dict[str, float]] = []
        for r in range(self.repeat):
            if r % 2 == 0:
                by_mao.append(mao())
                by_hand.append(hand())
            else:
                by_hand.append(hand())
                by_mao.append(mao())
        return by_hand, by_mao

    # large -------------------------------------------------------------------------------

    def fill_annexed(self, name: str) -> None:
        """The large dataset annexed: .gitattributes with MAO's rule line, 64 unlocked files
        whose content is in the remote's annex, the git-annex branch pushed."""
        seed = self.work / f"seed-{name}"
        git = self.hand.git
        git("init", "--quiet", "--initial-branch=ground-truth", str(seed))
        git("remote", "add", "origin", self.remotes.url(name), cwd=seed)
        git("annex", "init", "--quiet", "seed", cwd=seed)
        git("config", "annex.thin", "true", cwd=seed)
        (seed / ".gitattributes").write_text(largefiles_line(RULE) + "\n")
        for i in range(PARTS):
            random_file(seed / f"part-{i:02d}.bin", self.part_bytes)
        git("add", "--all", cwd=seed)
        git("commit", "--quiet", "-m", "input", cwd=seed)
        git("push", "--quiet", "origin", "ground-truth", "git-annex", cwd=seed)
        git("config", "remote.origin.annex-ignore", "false", cwd=seed)
        git("annex", "enableremote", "origin", cwd=seed)
        git("annex", "copy", "--quiet", "--to", "origin", "--all", cwd=seed)
        git("annex", "sync", "--quiet", "--only-annex", "--no-content", "origin", cwd=seed)
        rmtree(seed)

    def large(self, annexed: bool) -> None:
        kind = "annexed" if annexed else "plain"
        name, hand_name = f"big-{kind}", f"big-{kind}-hand"
        started = time.perf_counter()
        self.remotes.make(name)
        if annexed:
            self.fill_annexed(name)
        else:
            fill_input(self.remotes.path(name), self.part_bytes * PARTS // MB, parts=PARTS)
        self.remotes.copy(name, hand_name)
        made = time.perf_counter() - started
        if not self.quiet:
            print(f"({kind} dataset of {self.megabytes} MB made in {made:.1f} s)", flush=True)
        self.mao.register(self.a, name, annexed)
        current: dict[str, Any] = {}

        def mao_first() -> dict[str, float]:
            if "inst" in current:
                self.mao.drop(current["inst"])
            inst = current["inst"] = self.mao.instance(f"{kind}-{uuid.uuid4().hex[:6]}")
            self.mao.define(inst, name, "big", name, reads=name)
            return self.mao.step(inst, name)

        def hand_first() -> dict[str, float]:
            if "clone" in current:
                rmtree(current["clone"])
            clone = current["clone"] = self.work / f"hand-{kind}-{uuid.uuid4().hex[:6]}"
            return self.hand.first(self.remotes.url(hand_name), clone, annexed, self.part_bytes)

        hand, mao = self.rounds(mao_first, hand_first)
        self.timing("large", f"{kind} {self.megabytes} MB: first step", hand, mao)
        counter = iter(range(2, 10**6))

        def hand_change() -> dict[str, float]:
            index = 1 + next(counter) % (PARTS - 1)
            return self.hand.change(current["clone"], annexed, index, self.part_bytes)

        hand, mao = self.rounds(lambda: self.mao.step(current["inst"], name), hand_change)
        self.timing("large", f"{kind}: one file changed", hand, mao)
        inst = current["inst"]
        self.size(
            "large", f"{kind}: disk, dataset on instance", du(current["clone"]), du(inst.datasets.base_dir / name)
        )
        mao_remote, hand_remote = self.remotes.path(name), self.remotes.path(hand_name)
        self.size("large", f"{kind}: remote git history", history_bytes(hand_remote), history_bytes(mao_remote))
        if annexed:
            self.size("large", f"{kind}: remote annex", du(hand_remote / "annex"), du(mao_remote / "annex"))
        self.mao.drop(inst)
        rmtree(current["clone"])
        rmtree(mao_remote)
        rmtree(hand_remote)

    # history and files -------------------------------------------------------------------

    def merge_case(self, case: str, variant: str, dataset: str, tool: str) -> None:
        """A one-step merge pipeline writing ``dataset`` with ``tool`` against the same by hand,
        after a first step on each side (clone, node branch; one file written) not timed."""
        inst = self.a
        self.remotes.copy(dataset, f"{dataset}-hand")
        self.mao.register(inst, dataset)
        self.mao.define(inst, dataset, tool, dataset)
        by_hand = HandMerge(self.hand, self.remotes.url(f"{dataset}-hand"), self.work / f"hand-{dataset}")
        fn = {"append": append_row, "files": write_files}[tool]
        self.tools.files = 1
        self.mao.step(inst, dataset)
        by_hand.step(fn, self.tools)
        self.tools.files = self.files
        hand, mao = self.rounds(lambda: self.mao.step(inst, dataset), lambda: by_hand.step(fn, self.tools))
        self.timing(case, variant, hand, mao)
        rmtree(self.work / f"hand-{dataset}")

    def history(self) -> None:
        for commits in (1, self.commits):
            dataset = f"history-{commits}"
            fill_rows(self.remotes.make(dataset), commits)
            self.merge_case(
                "history", f"after {commits:,} earlier commit{'s' if commits > 1 else ''}", dataset, "append"
            )

    def many_files(self) -> None:
        fill_rows(self.remotes.make("files"), 1)
        self.merge_case("files", f"{self.files:,} files written", "files", "files")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0, help="size of the large dataset in GB (default 1)")
    parser.add_argument("--commits", type=int, help="earlier commits of the history case (default 10,000)")
    parser.add_argument("--files", type=int, help="files written in the files case (default 10,000)")
    parser.add_argument("--repeat", type=int, help="interleaved rounds per measure (default 3)")
    parser.add_argument("--quick", action="store_true", help="64 MB, 1,000 commits, 1,000 files, 2 rounds")
    parser.add_argument("--only", default=",".join(CASES), help="cases to run, comma-separated: large,history,files")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    cases = [c for c in args.only.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}: choose from {', '.join(CASES)}")
    args.mb = 64 if args.quick else round(args.gb * 1024)
    args.commits = args.commits or (1000 if args.quick else 10000)
    args.files = args.files or (1000 if args.quick else 10000)
    args.repeat = args.repeat or (2 if args.quick else 3)
    load_before = os.getloadavg()
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mao-scale-"))
    try:
        bench = Bench(work, args)
        try:
            bench.header()
            if "large" in cases:
                bench.large(annexed=False)
                bench.large(annexed=True)
            if "history" in cases:
                bench.history()
            if "files" in cases:
                bench.many_files()
        finally:
            bench.mao.close()
            bench.remotes.remove()
    finally:
        rmtree(work)
    wall = time.perf_counter() - began
    meta = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "remotes": "ssh" if bench.remotes.ssh else "local",
        "ssh_shared_connection": "ControlMaster" in bench.hand.env.get("GIT_SSH_COMMAND", ""),
        "large_dataset_mb": args.mb,
        "large_files": PARTS,
        "large_file_mb": round(args.mb / PARTS, 2),
        "earlier_commits": args.commits,
        "files_written": args.files,
        "rounds": args.repeat,
        "git": version(["git", "--version"]),
        "git_annex": version(["git", "annex", "version", "--raw"]),
        "wall_s": round(wall, 1),
    }
    kept = []
    if RESULTS.is_file() and set(cases) != set(CASES):
        kept = [row for row in json.loads(RESULTS.read_text()).get("results", []) if row["case"] not in cases]
    result = {"meta": meta, "results": kept + bench.rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"wall time {wall:.0f} s; written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
