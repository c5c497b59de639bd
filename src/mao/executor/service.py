"""The executor service: a small HTTP API that runs steps on a local executor.

An instance may run its executor as a service of its own (``maoctl executor serve``),
next to the container engine, and point the orchestrator at it with ``executor_url``;
the orchestrator then uses :class:`~mao.executor.remote.RemoteExecutor`.

The service always needs a token (``Authorization: Bearer <token>`` on every endpoint
but ``/health``): anyone who can start a step can mount directories into a container
running as root. ``maoctl executor serve`` uses ``executor_token`` when configured, else
the one it generated into ``<data_dir>/executor-token`` (mode 0600), which the
orchestrator's RemoteExecutor reads from the same data directory.

It only mounts dataset directories that resolve (symlinks followed) under its data root
(``executor_data_root``, default the instance's data directory); any other
``output_dir``/``input_dir`` is a 400 naming the root.

Endpoints:

- ``GET /health``: ``ok`` (503 when the engine does not answer); with the token, the engine's
  name and version too.
- ``POST /steps``: start a step (the fields of :class:`~mao.executor.base.StepSpec`)
  in a background thread; answers ``{"id": ...}``.
- ``GET /steps``: the steps this service knows, running or finished.
- ``GET /steps/{id}``: ``{"status": "running", ...}``, or the fields of the step's
  :class:`~mao.executor.base.StepResult` once it finished.
- ``GET /steps/{id}/logs?after=N&limit=M``: ``{"lines": [[n, text], ...], "done": bool}``,
  the lines numbered above ``N`` (numbering starts at 1), already masked by the executor.
  ``done`` is true once the step finished and no line is left after these.
- ``POST /steps/{id}/cancel``: ask a running step to stop (it ends ``cancelled``).
- ``DELETE /steps/{id}``: forget a finished step.
- ``POST /containers/remove`` ``{"run_id": int | null}``: stop this service's steps of
  that run and remove its containers on the engine; answers ``{"removed": n}``.

Each step keeps its last :data:`MAX_LOG_LINES` lines in memory; a finished step is
forgotten after :data:`KEEP_FINISHED` seconds if no client deleted it before.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from mao import __version__
from mao.errors import Conflict, InvalidInput, MAOError, NotFound
from mao.executor.base import Executor, PullPolicy, StepResources, StepResult, StepSpec
from mao.status import RunStatus
from mao.validation import Name, check_name
from mao.web import error_body, install_error_handlers, token_checker
from mao.web.auth import given_token
from mao.web.hosts import STATE_KEY as HOST_POLICY
from mao.web.hosts import HostPolicy, TrustedHosts
from mao.web.throttle import STATE_KEY as THROTTLE
from mao.web.throttle import FailureThrottle

log = logging.getLogger(__name__)

MAX_LOG_LINES = 100_000
"""Log lines kept per step; older ones are dropped first."""

KEEP_FINISHED = 3600.0
"""Seconds a finished step is kept for its client to read."""

MAX_BATCH = 10_000
"""Most log lines one ``GET /steps/{id}/logs`` returns."""

STOP_GRACE = 45.0
"""Seconds the service waits, when it shuts down, for cancelled steps to remove their containers."""


class StepIn(BaseModel):
    """The body of ``POST /steps``: a :class:`StepSpec` as JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: int
    pipeline: Name
    step: Name
    image: str = Field(min_length=1)
    output_dir: Path
    input_dir: Path | None = None
    command: str | list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    docker_socket: bool = False
    timeout: float = Field(default=3600.0, gt=0)
    pull_policy: PullPolicy = "if-not-present"
    instance: str = ""
    secret_values: list[str] = Field(default_factory=list)
    cpus: float | None = Field(default=None, gt=0, le=1024)
    """The step's cpus and memory (``512m``): its container's limits."""
    memory: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,8}[kmgtKMGT]?$")

    @field_validator("output_dir", "input_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        if not value.is_absolute():
            raise ValueError(
                f"{value} is not an absolute path: the executor service and the orchestrator "
                "must see datasets at the same absolute paths"
            )
        if ".." in value.parts:
            raise ValueError(f"{value}: '..' is not allowed in a dataset path")
        return value

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        if value:
            try:
                check_name(value, "instance name")
            except MAOError as exc:
                raise ValueError(exc.message) from None
        return value

    def to_spec(self, data_root: Path) -> StepSpec:
        """The step's spec, its directories resolved and checked to be under ``data_root``
        (the container gets the resolved paths, so a symlink changed later does not count)."""
        sent = set(type(self).model_fields)
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(StepSpec) if f.name in sent}
        values["resources"] = StepResources(cpus=self.cpus, memory=self.memory)
        values["output_dir"] = confine(self.output_dir, data_root, "output_dir")
        if self.input_dir is not None:
            values["input_dir"] = confine(self.input_dir, data_root, "input_dir")
        return StepSpec(**values)


def confine(path: Path, data_root: Path, what: str) -> Path:
    """``path`` resolved (symlinks followed), if that lies under ``data_root``; else InvalidInput."""
    root = Path(os.path.realpath(data_root))
    resolved = Path(os.path.realpath(path))
    if resolved != root and root not in resolved.parents:
        raise InvalidInput(
            f"{what} {path} is not under this executor service's data root {root}: it only mounts "
            "dataset directories there (set executor_data_root to the directory the orchestrator keeps them in)",
            details={"data_root": str(root)},
        )
    return resolved


class RemoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: int | None = None


class _Step:
    """One step this service runs: its spec, cancel flag, log lines and, at the end, result."""

    def __init__(self, spec: StepSpec, max_lines: int) -> None:
        self.id = uuid.uuid4().hex
        self.spec = spec
        self.cancel = threading.Event()
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.finished_mono: float | None = None
        self.result: StepResult | None = None
        self.thread: threading.Thread | None = None
        self._lines: deque[tuple[int, str]] = deque(maxlen=max_lines)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self.result is None

    def append(self, line: str) -> None:
        with self._lock:
            self._lines.append((next(self._numbers), line))

    def finish(self, result: StepResult) -> None:
        with self._lock:
            self.finished_at = time.time()
            self.finished_mono = time.monotonic()
            self.result = result

    def lines_after(self, after: int, limit: int) -> tuple[list[tuple[int, str]], bool]:
        """Up to ``limit`` lines numbered above ``after``, and whether that is the end of a
        finished step (read together, so no line comes after ``done``)."""
        with self._lock:
            finished = self.result is not None
            lines = self._lines
            if not lines or lines[-1][0] <= after:
                return [], finished
            # numbers are consecutive: the first wanted line's position is computed, not searched
            start = max(0, after + 1 - lines[0][0])
            out = list(itertools.islice(lines, start, start + limit))
            return out, finished and out[-1][0] == lines[-1][0]

    def describe(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "run_id": self.spec.run_id,
            "pipeline": self.spec.pipeline,
            "step": self.spec.step,
            "image": self.spec.image,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
        result = self.result
        if result is None:
            body["status"] = RunStatus.RUNNING.value
        else:
            body.update(dataclasses.asdict(result))
        return body


class StepTable:
    """The steps this service knows, each run in a thread of its own on ``executor``."""

    def __init__(
        self, executor: Executor, *, max_lines: int = MAX_LOG_LINES, keep_finished: float = KEEP_FINISHED
    ) -> None:
        self.executor = executor
        self.max_lines = max_lines
        self.keep_finished = keep_finished
        self._steps: dict[str, _Step] = {}
        self._lock = threading.Lock()

    def start(self, spec: StepSpec) -> _Step:
        step = _Step(spec, self.max_lines)
        step.thread = threading.Thread(target=self._run, args=(step,), name=f"mao-step-{step.id[:8]}", daemon=True)
        with self._lock:
            self._sweep()
            self._steps[step.id] = step
        step.thread.start()
        return step

    def _run(self, step: _Step) -> None:
        try:
            result = self.executor.run(step.spec, step.append, step.cancel)
        except Exception as exc:  # executors do not raise for a step's failure; this is a bug
            log.exception("step %s (run %s) crashed the executor", step.spec.step, step.spec.run_id)
            result = StepResult(
                status=RunStatus.FAILED, error=f"executor service error: {exc.__class__.__name__}: {exc}"
            )
        step.finish(result)
        log.info("step %s of run %s %s", step.spec.step, step.spec.run_id, result.status)

    def get(self, step_id: str) -> _Step:
        with self._lock:
            self._sweep()
            step = self._steps.get(step_id)
        if step is None:
            raise NotFound(
                f"no step {step_id} on this executor service (finished steps are kept {self.keep_finished:g} s)"
            )
        return step

    def all(self) -> list[_Step]:
        with self._lock:
            self._sweep()
            return list(self._steps.values())

    def forget(self, step_id: str) -> None:
        step = self.get(step_id)
        if step.running:
            raise Conflict(f"step {step_id} is still running: cancel it first")
        with self._lock:
            self._steps.pop(step_id, None)

    def cancel_run(self, run_id: int | None) -> None:
        for step in self.all():
            if step.running and (run_id is None or step.spec.run_id == run_id):
                step.cancel.set()

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Cancel every running step and wait (up to ``grace``) for their containers to go."""
        running = [s for s in self.all() if s.running]
        for step in running:
            step.cancel.set()
        deadline = time.monotonic() + grace
        for step in running:
            if step.thread is not None:
                step.thread.join(max(0.0, deadline - time.monotonic()))

    def _sweep(self) -> None:
        """Forget steps finished longer than ``keep_finished`` ago (caller holds the lock)."""
        cutoff = time.monotonic() - self.keep_finished
        for step_id in [i for i, s in self._steps.items() if s.finished_mono is not None and s.finished_mono < cutoff]:
            del self._steps[step_id]


@dataclasses.dataclass(frozen=True)
class StepLimits:
    """How much the service keeps of its steps: ``max_log_lines`` per step, finished steps for
    ``keep_finished`` seconds, and ``stop_grace`` seconds for cancelled steps at shutdown."""

    max_log_lines: int = MAX_LOG_LINES
    keep_finished: float = KEEP_FINISHED
    stop_grace: float = STOP_GRACE


def create_executor_app(
    executor: Executor,
    token: str,
    *,
    data_root: Path,
    limits: StepLimits | None = None,
    hosts: HostPolicy | None = None,
) -> FastAPI:
    """The service's app around ``executor`` (which its caller closes): every request but
    ``/health`` needs ``token`` (wrong ones are throttled per client; ``/health`` answers
    ``ok`` to anyone and its details with the token); steps only mount
    directories under ``data_root``; a request for a name not in ``hosts`` (default: loopback
    names only) is a 400 (see :mod:`mao.web.hosts`). On shutdown, running steps are cancelled
    so that their containers are removed."""
    if not token or not token.strip():
        raise InvalidInput("the executor service needs a token: set MAO_EXECUTOR_TOKEN or let it generate one")
    limits = limits or StepLimits()
    table = StepTable(executor, max_lines=limits.max_log_lines, keep_finished=limits.keep_finished)
    stop_grace = limits.stop_grace

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            table.stop(stop_grace)

    app = FastAPI(
        title="MAO executor",
        version=__version__,
        description="Runs pipeline steps' containers for a MAO orchestrator.",
        lifespan=lifespan,
    )
    app.state.steps = table
    setattr(app.state, HOST_POLICY, hosts or HostPolicy())
    setattr(app.state, THROTTLE, FailureThrottle())
    app.add_middleware(TrustedHosts)
    install_error_handlers(app)
    hint = "the orchestrator reads it from <data_dir>/executor-token, or set the same MAO_EXECUTOR_TOKEN on both"
    check_token = token_checker(lambda _request: token, hint)
    _add_health(app, table, check_token)
    _add_steps(app, table, data_root, [Depends(check_token)])
    return app


def _add_health(app: FastAPI, table: StepTable, check_token: Callable[[Request], Awaitable[None]]) -> None:
    executor = table.executor

    @app.get("/health", tags=["health"])
    async def health(request: Request) -> Any:
        """``ok`` and the status for anyone (healthchecks); the engine's details with the token."""
        detailed = bool(given_token(request))
        if detailed:
            await check_token(request)  # a wrong token is a 401 (and counts as one), not a shorter answer
        try:
            engine = await run_in_threadpool(executor.ping)
        except MAOError as exc:
            if not detailed:
                message = "unhealthy: send the executor token (Authorization: Bearer <token>) for the reason"
                return JSONResponse(error_body("unavailable", message), status_code=503)
            body = error_body("unavailable", f"unhealthy: {exc.message}", exc.details or None)
            return JSONResponse(body, status_code=503)
        if not detailed:
            return {"ok": True}
        running = sum(1 for s in table.all() if s.running)
        return {"ok": True, "executor": executor.name, **engine, "mao_version": __version__, "steps_running": running}


def _add_steps(app: FastAPI, table: StepTable, data_root: Path, protected: Sequence[Any]) -> None:
    executor = table.executor

    @app.post("/steps", status_code=202, dependencies=protected, tags=["steps"])
    def start_step(body: StepIn) -> dict[str, str]:
        step = table.start(body.to_spec(data_root))
        log.info("step %s of run %s started as %s", body.step, body.run_id, step.id)
        return {"id": step.id}

    @app.get("/steps", dependencies=protected, tags=["steps"])
    def list_steps() -> dict[str, Any]:
        return {"steps": [s.describe() for s in table.all()]}

    @app.get("/steps/{step_id}", dependencies=protected, tags=["steps"])
    def get_step(step_id: str) -> dict[str, Any]:
        return table.get(step_id).describe()

    @app.get("/steps/{step_id}/logs", dependencies=protected, tags=["steps"])
    def step_logs(
        step_id: str,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_BATCH)] = 1000,
    ) -> dict[str, Any]:
        lines, done = table.get(step_id).lines_after(after, limit)
        return {"lines": [[n, text] for n, text in lines], "done": done}

    @app.post("/steps/{step_id}/cancel", dependencies=protected, tags=["steps"])
    def cancel_step(step_id: str) -> dict[str, Any]:
        step = table.get(step_id)
        step.cancel.set()
        return step.describe()

    @app.delete("/steps/{step_id}", dependencies=protected, tags=["steps"])
    def forget_step(step_id: str) -> dict[str, bool]:
        table.forget(step_id)
        return {"ok": True}

    @app.post("/containers/remove", dependencies=protected, tags=["containers"])
    def remove_containers(body: Annotated[RemoveIn | None, Body()] = None) -> dict[str, int]:
        run_id = body.run_id if body is not None else None
        table.cancel_run(run_id)
        return {"removed": executor.remove_run_containers(run_id)}
