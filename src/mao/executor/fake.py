"""An in-memory executor for fast tests: each "image" is a Python callable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from mao.executor.base import Executor, LogSink, StepResult, StepSpec, mask
from mao.status import RunStatus

FakeTool = Callable[[StepSpec, LogSink], int]
"""Stands in for an image: gets the spec and a log sink, writes into ``spec.output_dir``,
may read ``spec.input_dir``, returns the exit code."""


class FakeExecutor(Executor):
    """Runs ``tools[spec.image](spec, on_log)`` in a thread, as a container would run.

    Behaves like :class:`~mao.executor.docker.DockerExecutor` where callers can tell:
    unknown image, refused Docker socket, timeout, cancel, non-zero exit and secret
    masking give the same kinds of results. A tool that outlives its timeout or cancel
    cannot be killed: its thread is left to finish in the background, and anything it
    logs afterwards is dropped.

    ``calls`` records every spec passed to :meth:`run`, in order.
    """

    name = "fake"

    def __init__(
        self,
        tools: Mapping[str, FakeTool] | None = None,
        *,
        allow_docker_socket: bool = False,
        poll_interval: float = 0.01,
    ) -> None:
        self.tools: dict[str, FakeTool] = dict(tools or {})
        self.allow_docker_socket = allow_docker_socket
        self.poll_interval = poll_interval
        self.calls: list[StepSpec] = []
        self._lock = threading.Lock()
        self._running: dict[int, tuple[StepSpec, threading.Event]] = {}
        self._next_id = 0
        self.closed = False

    def run(self, spec: StepSpec, on_log: LogSink, cancel: threading.Event | None = None) -> StepResult:
        with self._lock:
            self.calls.append(spec)
            self._next_id += 1
            number = self._next_id
        tool = self.tools.get(spec.image)
        if tool is None or (spec.docker_socket and not self.allow_docker_socket):
            return self._refusal(spec)
        cancel = cancel or threading.Event()
        if cancel.is_set():
            return StepResult(status=RunStatus.CANCELLED, error="cancelled before it started")
        Path(spec.output_dir).mkdir(parents=True, exist_ok=True)

        stop = threading.Event()  # set by remove_run_containers, like removing the container
        with self._lock:
            self._running[number] = (spec, stop)
        container_id = f"fake-{number}"
        running = _ToolThread(tool, spec, on_log)
        deadline = time.monotonic() + spec.timeout
        running.start(f"mao-fake-{container_id}")
        try:
            stopped_by = self._wait(running, deadline, cancel, stop)
        finally:
            with self._lock:
                self._running.pop(number, None)
        running.close_sink()
        return _result(spec, running, stopped_by, container_id)

    def _refusal(self, spec: StepSpec) -> StepResult:
        """The failed result of a step that cannot start: a refused Docker socket, else an unknown image."""
        if spec.docker_socket and not self.allow_docker_socket:
            return StepResult(
                status=RunStatus.FAILED,
                error=f"step {spec.step!r} asks for the Docker socket, which this instance does not "
                "allow (enable allow_docker_socket to permit it)",
            )
        return StepResult(status=RunStatus.FAILED, error=f"image {spec.image!r} not found: no such fake tool")

    def _wait(
        self, running: _ToolThread, deadline: float, cancel: threading.Event, stop: threading.Event
    ) -> str | None:
        """Wait for the tool to end: the status that stopped it first (None: it ended by itself)."""
        while not running.finished.wait(self.poll_interval):
            if cancel.is_set() or stop.is_set():
                return RunStatus.CANCELLED
            if time.monotonic() >= deadline:
                return RunStatus.TIMED_OUT
        return None

    def remove_run_containers(self, run_id: int | None = None) -> int:
        """Stops the steps still running (of ``run_id``, or all): they end "cancelled"."""
        with self._lock:
            matching = [stop for spec, stop in self._running.values() if run_id is None or spec.run_id == run_id]
        for stop in matching:
            stop.set()
        return len(matching)

    def ping(self) -> dict[str, str]:
        return {"engine": "fake", "version": "0"}

    def image_problem(self, image: str, timeout: float = 10.0) -> str | None:
        """Like the engine's check: a fake tool is an image it has; none can be pulled."""
        if image in self.tools:
            return None
        return f"image {image!r} is not on the container engine at fake:// and could not be pulled: no such fake tool"

    def close(self) -> None:
        self.closed = True


class _ToolThread:
    """A fake tool running in a thread of its own, as in a container: its outcome, and its log
    sink, which drops what the tool writes once the step ended."""

    def __init__(self, tool: FakeTool, spec: StepSpec, on_log: LogSink) -> None:
        self.tool = tool
        self.spec = spec
        self.on_log = on_log
        self.finished = threading.Event()
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._sink_open = True
        self._sink_lock = threading.Lock()

    def start(self, name: str) -> None:
        threading.Thread(target=self._body, name=name, daemon=True).start()

    def sink(self, line: str) -> None:
        with self._sink_lock:
            if self._sink_open:
                self.on_log(mask(line, self.spec.secret_values))

    def close_sink(self) -> None:
        with self._sink_lock:
            self._sink_open = False

    def _body(self) -> None:
        try:
            self.exit_code = int(self.tool(self.spec, self.sink))
        except BaseException as exc:  # noqa: BLE001 - a crashing tool is a failed step, as in a container
            self.error = exc
        finally:
            self.finished.set()


def _result(spec: StepSpec, running: _ToolThread, stopped_by: str | None, container_id: str) -> StepResult:
    """The step's result from how the tool ended."""
    result = StepResult(status=RunStatus.FAILED, image_digest=f"sha256:fake-{spec.image}", container_id=container_id)
    if stopped_by == RunStatus.TIMED_OUT:
        result.status, result.exit_code = RunStatus.TIMED_OUT, 137
        result.error = f"timed out after {spec.timeout:g} s"
    elif stopped_by == RunStatus.CANCELLED:
        result.status, result.exit_code = RunStatus.CANCELLED, 137
        result.error = "cancelled"
    elif running.error is not None:
        result.exit_code = 1
        result.error = f"exit code 1 ({type(running.error).__name__}: {running.error})"
    else:
        result.exit_code = running.exit_code if running.exit_code is not None else -1
        if result.exit_code == 0:
            result.status = RunStatus.SUCCEEDED
        else:
            result.error = f"exit code {result.exit_code}"
    return result
