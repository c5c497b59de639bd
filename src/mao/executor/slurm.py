"""Run steps as Slurm batch jobs, the container run on the node by the site's container CLI.

Each step is one ``sbatch --parsable`` of the job script ``slurm_job.sh`` (shipped beside
this module) with a minimal environment of its own: what the script needs, the step's
variables, ``PATH`` and ``SLURM_CONF``; never the instance's own variables or tokens. The job
runs the tool's image with the site's CLI (``docker`` or ``podman``); the container belongs
to the engine, not to the job, so the script's EXIT trap kills and removes it when Slurm ends
the job (``scancel``, a time limit).

State comes from ``squeue --json`` (every job the controller knows: it ignores its filters,
and its exit codes are raw wait statuses), then, once the controller has forgotten a job,
from ``sacct -c`` (the job completion file: no slurmdbd needed). A job is reported
``queued`` when sbatch took it and ``running`` with its node when it starts. The step's
timeout is enforced here (``scancel`` at the deadline); Slurm's own limit (``-t``, in whole
minutes) is set a minute later as a backstop. The job's output file, in a directory the
nodes and the instance both see, is read while the job runs: its lines are the step's log.

Data: ``shared`` (the nodes see the instance's data directory: plain bind mounts) or
``commit`` (the job fetches the step's trees from the instance's API with the step's own
token and sends the output tree back; see :mod:`mao.exchange`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from mao.errors import ExecutorError, InvalidInput
from mao.executor.base import (
    Executor,
    LogSink,
    Placement,
    StepResources,
    StepResult,
    StepSpec,
)
from mao.executor.docker import _LineSplitter, split_command
from mao.status import PLACED_RUNNING, RunStatus

logger = logging.getLogger(__name__)

SlurmData = Literal["commit", "shared"]

COMMAND_TIMEOUT = 30.0
"""Seconds one Slurm command may take."""

ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"})
"""Job states after which more is to come."""

STARTED = frozenset({"RUNNING", "COMPLETING"})

END_WAIT = 60.0
"""Seconds to wait, after a scancel, for the job to end (its script removes the container)."""

FIRST_POLL = 0.1
"""Seconds between the first looks at a job; the interval grows to ``poll_interval``."""

JOB_SCRIPT = "slurm_job.sh"

EXIT_SETUP = 125
EXIT_RETURN = 124

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^([0-9]+)([kmgtKMGT]?)$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True)
class JobState:
    """A job as Slurm reports it: its state (``RUNNING``, ``FAILED``...), its exit code and the
    signal that ended it, and the node it runs on."""

    state: str
    exit_code: int | None = None
    signal: int | None = None
    node: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


class SlurmCommands:
    """Slurm's commands, run without a shell with ``SLURM_CONF`` set to ``conf`` (when given).

    ``squeue --json`` answers for every job whatever its filters: one answer, kept for
    ``min_age`` seconds, serves every step's look at its job.
    """

    def __init__(self, conf: Path | None = None, *, timeout: float = COMMAND_TIMEOUT, min_age: float = 0.1) -> None:
        self.conf = conf
        self.timeout = timeout
        self.min_age = min_age
        self._lock = threading.Lock()
        self._jobs: dict[int, dict[str, Any]] = {}
        self._jobs_at = -math.inf

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A minimal environment for a command: PATH, HOME, SLURM_CONF and ``extra``."""
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LC_ALL": "C"}
        if "HOME" in os.environ:
            env["HOME"] = os.environ["HOME"]
        if self.conf is not None:
            env["SLURM_CONF"] = str(self.conf)
        env.update(extra or {})
        return env

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        try:
            done = subprocess.run(
                list(args),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env=env or self.environment(),
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise ExecutorError(f"{args[0]} is not installed here: the Slurm client commands are needed") from exc
        except subprocess.TimeoutExpired as exc:
            raise ExecutorError(f"{args[0]} did not answer in {self.timeout:g}s: is slurmctld reachable?") from exc
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise ExecutorError(f"{args[0]} failed: {said[-1] if said else f'exit status {done.returncode}'}")
        return done.stdout

    def submit(self, args: list[str], env: dict[str, str]) -> str:
        """``sbatch --parsable`` with ``args``: the job's id."""
        out = self.run("sbatch", "--parsable", *args, env=self.environment(env)).strip()
        job = out.split(";", 1)[0]
        if not job.isdigit():
            raise ExecutorError(f"sbatch gave no job id: {out[:200]!r}")
        return job

    def jobs(self, fresh: bool = False) -> dict[int, dict[str, Any]]:
        """Every job the controller still knows (pending, running, ended less than MinJobAge ago)."""
        with self._lock:
            if fresh or time.monotonic() - self._jobs_at >= self.min_age:
                try:
                    data = json.loads(self.run("squeue", "--json") or "{}")
                    self._jobs = {int(j["job_id"]): j for j in data.get("jobs", []) if "job_id" in j}
                except (ValueError, TypeError, AttributeError) as exc:
                    raise ExecutorError(f"squeue --json gave no list of jobs: {exc}") from exc
                self._jobs_at = time.monotonic()
            return self._jobs

    def state(self, job: str) -> JobState | None:
        """The job's state from the controller, else from the job completion file; None when
        neither knows it (yet)."""
        found = self.jobs().get(int(job))
        if found is not None:
            return _from_squeue(found)
        return self.completed(job)

    def completed(self, job: str) -> JobState | None:
        """The job's record in the job completion file (``sacct -c``: no slurmdbd needed)."""
        try:
            out = self.run("sacct", "-c", "-j", job, "-P", "-n", "-o", "JobID,State,ExitCode,NodeList")
        except ExecutorError:
            return None
        for line in out.splitlines():
            fields = line.split("|")
            if len(fields) >= 4 and fields[0] == job:
                code, _, sig = fields[2].partition(":")
                return JobState(
                    state=fields[1].split()[0] if fields[1] else "UNKNOWN",
                    exit_code=int(code) if code.isdigit() else None,
                    signal=int(sig) if sig.isdigit() else None,
                    node=fields[3] or None,
                )
        return None

    def cancel(self, job: str) -> None:
        self.run("scancel", job)

    def version(self) -> str:
        self.run("scontrol", "ping")
        return self.run("sinfo", "--version").strip().removeprefix("slurm").strip() or "unknown"


def _from_squeue(job: dict[str, Any]) -> JobState:
    raw = job.get("exit_code")
    code = sig = None
    if isinstance(raw, int) and job.get("job_state") not in ACTIVE:
        code, sig = raw >> 8, raw & 0x7F  # a wait(2) status
    nodes = job.get("nodes")
    return JobState(state=str(job.get("job_state") or "UNKNOWN"), exit_code=code, signal=sig, node=nodes or None)


def slurm_memory(memory: str) -> str:
    """A size (``512m``, ``2g``, bytes without a unit) as sbatch's ``--mem``, in whole MiB."""
    match = _SIZE.fullmatch(memory.strip())
    if match is None:
        raise InvalidInput(f"memory must be a size such as 512m or 2g, not {memory!r}")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    return f"{max(1, math.ceil(size / 1024**2))}M"


def time_limit(timeout: float) -> str:
    """Slurm's limit (whole minutes, checked late) as a backstop a minute after the step's own."""
    return str(math.ceil(timeout / 60) + 1)


def job_script() -> Path:
    path = resources.files("mao.executor").joinpath(JOB_SCRIPT)
    return Path(str(path))


@dataclass(frozen=True)
class SlurmOptions:
    """How steps run on the cluster. ``container_cli``: the node's container CLI with its
    options (``docker``, ``podman --remote ...``); ``data``: ``shared`` or ``commit``;
    ``log_dir``: where jobs write their output, seen by the nodes and by the instance;
    ``partition``: of steps that name none; ``network_mode``: the containers' network (None:
    the CLI's default); ``poll_interval``: the longest time between two looks at a job."""

    log_dir: Path
    container_cli: str = "docker"
    data: SlurmData = "shared"
    partition: str | None = None
    network_mode: str | None = None
    poll_interval: float = 0.5


class SlurmExecutor(Executor):
    """Runs each step as a Slurm batch job (see the module's text), through ``commands``."""

    name = "slurm"

    def __init__(self, commands: SlurmCommands, options: SlurmOptions, *, instance: str = "") -> None:
        cli = shlex.split(options.container_cli)
        if not cli or any(re.search(r"\s", part) for part in cli):
            raise InvalidInput(
                f"slurm_container_cli {options.container_cli!r} is not a command: name the nodes' container CLI "
                "(docker or podman) and its options, none with a space inside"
            )
        self.commands = commands
        self.container_cli = " ".join(cli)
        self.data = options.data
        self.log_dir = options.log_dir
        self.partition = options.partition
        self.network_mode = options.network_mode
        self.instance = instance
        self.poll_interval = options.poll_interval
        self.transfers_data = options.data == "commit"

    # ------------------------------------------------------------------ run

    def run(self, spec: StepSpec, on_log: LogSink, cancel: threading.Event | None = None) -> StepResult:
        cancel = cancel or threading.Event()
        refusal = self._refusal(spec)
        if refusal is not None:
            return StepResult(status=RunStatus.FAILED, error=refusal)
        if cancel.is_set():
            return StepResult(status=RunStatus.CANCELLED, error="cancelled before the job was submitted")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = self.log_dir / f"mao-{spec.run_id}-{spec.step}-{uuid.uuid4().hex[:12]}.out"
        try:
            job = self.commands.submit(self._sbatch_args(spec, out), self._job_env(spec))
        except (ExecutorError, InvalidInput) as exc:
            out.unlink(missing_ok=True)
            return StepResult(status=RunStatus.FAILED, error=f"the job was not submitted: {exc.message}")
        logger.info("step %s of run %s: Slurm job %s", spec.step, spec.run_id, job)
        _report(spec, Placement(self.name, "queued", job=job))
        image = _ImageLine(job, on_log)
        tail = _Tail(out, _LineSplitter(image, spec.secret_values))
        try:
            result = _Job(self, job, spec, tail, cancel).follow()
            tail.read()
            result.image_digest = result.image_digest or image.digest
            return result
        except BaseException:  # never a job left running for a step nobody follows anymore
            _cancel(self.commands, job)
            raise
        finally:
            tail.close()
            out.unlink(missing_ok=True)

    def _refusal(self, spec: StepSpec) -> str | None:
        if spec.docker_socket:
            return "a step on Slurm cannot have the Docker socket (docker_socket): the node's engine is not this one"
        if self.data == "commit" and spec.transfer is None:
            return "this Slurm engine moves data by commit, but the step has no transfer (set exchange_url)"
        bad = sorted(name for name in spec.env if not _ENV_NAME.fullmatch(name))
        if bad:
            return f"environment variable names {bad} cannot be passed to a Slurm job"
        newline = sorted(name for name, value in spec.env.items() if "\n" in value)
        if newline:
            return f"environment variables {newline} hold a line break, which a Slurm job cannot pass to its container"
        return None

    def _sbatch_args(self, spec: StepSpec, out: Path) -> list[str]:
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"mao-{spec.step}")[:64]
        args = [
            "--job-name", name,
            "--comment", f"mao:{self.instance or spec.instance}:{spec.run_id}:{spec.step}",
            "--output", str(out),
            "--time", time_limit(spec.timeout),
            "--export", "ALL",
            "--chdir", "/tmp",
        ]  # fmt: skip
        args += resource_args(spec.resources, self.partition)
        command = split_command(spec.command) or []
        return [*args, str(job_script()), *command]

    def _job_env(self, spec: StepSpec) -> dict[str, str]:
        labels = {**spec.labels, "mao.executor": self.name}
        env = {
            "MAO_JOB_CLI": self.container_cli,
            "MAO_JOB_IMAGE": spec.image,
            "MAO_JOB_NETWORK": self.network_mode or "",
            "MAO_JOB_LABELS": " ".join(f"{k}={v}" for k, v in labels.items() if v and " " not in v),
            "MAO_JOB_ENV_NAMES": " ".join(spec.env),
        }
        env.update({f"MAO_ENV_{name}": value for name, value in spec.env.items()})
        if spec.transfer is not None:
            env["MAO_JOB_DATA_URL"] = spec.transfer.data_url
            env["MAO_JOB_TOKEN"] = spec.transfer.token
            if spec.transfer.input_url:
                env["MAO_JOB_INPUT_URL"] = spec.transfer.input_url
        else:
            env["MAO_JOB_DATA"] = str(spec.output_dir)
            if spec.input_dir is not None:
                env["MAO_JOB_INPUT"] = str(spec.input_dir)
        return env

    # ------------------------------------------------------------------ the rest

    def remove_run_containers(self, run_id: int | None = None) -> int:
        """Cancel this instance's jobs still pending or running (of ``run_id`` when given);
        each job's script removes its container as it ends."""
        prefix = f"mao:{self.instance}:" if self.instance else "mao:"
        cancelled = 0
        for job_id, job in self.commands.jobs(fresh=True).items():
            comment = str(job.get("comment") or "")
            if not comment.startswith(prefix) or job.get("job_state") not in ACTIVE:
                continue
            if run_id is not None and comment.split(":")[2:3] != [str(run_id)]:
                continue
            try:
                self.commands.cancel(str(job_id))
                cancelled += 1
            except ExecutorError as exc:
                logger.warning("could not cancel Slurm job %s: %s", job_id, exc.message)
        return cancelled

    def ping(self) -> dict[str, str]:
        return {"engine": "slurm", "version": self.commands.version()}


def resource_args(res: StepResources, partition: str | None) -> list[str]:
    """sbatch's options for what a step asks."""
    args: list[str] = []
    if res.cpus is not None:
        args += ["--cpus-per-task", str(max(1, math.ceil(res.cpus)))]
    if res.memory is not None:
        args += ["--mem", slurm_memory(res.memory)]
    if res.partition or partition:
        args += ["--partition", str(res.partition or partition)]
    if res.gres is not None:
        args += ["--gres", res.gres]
    return args


class _ImageLine:
    """Passes the job's lines on, and takes the image the job ran from the first line that
    names it (``[slurm job N] image sha256:...``, written by the job script before the tool
    starts: a line the tool prints comes later and is not taken)."""

    def __init__(self, job: str, on_log: LogSink) -> None:
        self.prefix = f"[slurm job {job}] image "
        self.on_log = on_log
        self.digest: str | None = None
        self.seen = False

    def __call__(self, line: str) -> None:
        if not self.seen and line.startswith(self.prefix):
            self.seen = True
            self.digest = line[len(self.prefix) :].strip() or None
        self.on_log(line)


def _cancel(commands: SlurmCommands, job: str) -> None:
    try:
        commands.cancel(job)
    except ExecutorError as exc:
        logger.warning("could not cancel Slurm job %s: %s", job, exc.message)


def _report(spec: StepSpec, placement: Placement) -> None:
    if spec.on_placement is None:
        return
    try:
        spec.on_placement(placement)
    except Exception:  # a broken sink must not lose the job
        logger.exception("placement sink failed")


class _Tail:
    """The job's output file, read from where the last read stopped."""

    def __init__(self, path: Path, lines: _LineSplitter) -> None:
        self.path = path
        self.lines = lines
        self.offset = 0

    def read(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        if chunk:
            self.lines.feed(chunk)

    def close(self) -> None:
        self.read()
        self.lines.close()


class _Job:
    """One submitted job followed to its end."""

    def __init__(self, executor: SlurmExecutor, job: str, spec: StepSpec, tail: _Tail, cancel: threading.Event) -> None:
        self.executor = executor
        self.commands = executor.commands
        self.job = job
        self.spec = spec
        self.tail = tail
        self.cancel = cancel
        self.node: str | None = None
        self.deadline = math.inf  # from the job's start: the time in the queue does not count

    def follow(self) -> StepResult:
        pause = FIRST_POLL
        unknown_since = time.monotonic()
        while True:
            self.tail.read()
            try:
                state = self.commands.state(self.job)
            except ExecutorError as exc:
                logger.warning("Slurm job %s: %s", self.job, exc.message)
                state = None
            if state is None:
                if time.monotonic() - unknown_since > END_WAIT:
                    _cancel(self.commands, self.job)
                    return self._failed(f"Slurm job {self.job} is known neither to squeue nor to sacct")
            else:
                unknown_since = time.monotonic()
                self._seen(state)
                if not state.active:
                    return self._result(state)
            if self.cancel.is_set():
                return self._stop(RunStatus.CANCELLED, RunStatus.CANCELLED.value)
            if time.monotonic() > self.deadline:
                return self._stop(RunStatus.TIMED_OUT, f"timed out after {self.spec.timeout:g}s")
            self.cancel.wait(pause)
            pause = min(pause * 1.5, self.executor.poll_interval)

    def _seen(self, state: JobState) -> None:
        if state.state in STARTED and self.deadline == math.inf:
            self.deadline = time.monotonic() + self.spec.timeout
            self.node = state.node
            _report(self.spec, Placement(self.executor.name, PLACED_RUNNING, node=state.node, job=self.job))
        elif state.node and self.node is None and not state.active:
            self.node = state.node

    def _stop(self, status: RunStatus, why: str) -> StepResult:
        """scancel, then wait for the job to end: its script removes the container."""
        _cancel(self.commands, self.job)
        self._wait_end()
        return StepResult(status=status, error=why, node=self.node)

    def _wait_end(self) -> None:
        give_up = time.monotonic() + END_WAIT
        while time.monotonic() < give_up:
            self.tail.read()
            try:
                state = self.commands.state(self.job)
            except ExecutorError:
                state = None
            if state is not None and not state.active:
                return
            time.sleep(0.2)
        logger.warning("Slurm job %s did not end %gs after scancel", self.job, END_WAIT)

    def _failed(self, error: str, code: int | None = None) -> StepResult:
        return StepResult(status=RunStatus.FAILED, exit_code=code, error=error, node=self.node)

    def _result(self, state: JobState) -> StepResult:
        code = state.exit_code
        if state.state == "COMPLETED" and not code:
            return StepResult(status=RunStatus.SUCCEEDED, exit_code=0, node=self.node)
        if state.state == "TIMEOUT":
            return StepResult(
                status=RunStatus.TIMED_OUT, error=f"Slurm's time limit ended job {self.job}", node=self.node
            )
        if state.state == "CANCELLED":
            return self._failed(f"Slurm job {self.job} was cancelled on the cluster")
        if code == EXIT_SETUP:
            return self._failed("the job could not fetch the step's data or create its container (see the log)", code)
        if code == EXIT_RETURN:
            return self._failed("the job could not send the step's output back (see the log)", code)
        if state.state == "FAILED" and code:
            return self._failed(f"exit code {code}", code)
        said = f"signal {state.signal}" if state.signal else f"exit code {code}"
        return self._failed(f"Slurm job {self.job} ended {state.state} ({said})", code)
