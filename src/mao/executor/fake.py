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
        container_id = f"fake-{number}"
        if spec.docker_socket and not self.allow_docker_socket:
            return StepResult(
                status=RunStatus.FAILED,
                error=f"step {spec.step!r} asks for the Docker socket, which this instance does not "
                "allow (enable allow_docker_socket to permit it)",
            )
        tool = self.tools.get(spec.image)
        if tool is None:
            return StepResult(status=RunStatus.FAILED, error=f"image {spec.image!r} not found: no such fake tool")
        cancel = cancel or threading.Event()
        if cancel.is_set():
            return StepResult(status=RunStatus.CANCELLED, error="cancelled before it started")
        Path(spec.output_dir).mkdir(parents=True, exist_ok=True)

        stop = threading.Event()  # set by remove_run_containers, like removing the container
        with self._lock:
            self._running[number] = (spec, stop)
        finished = threading.Event()
        outcome: dict[str, object] = {}
        sink_open = True
        sink_lock = threading.Lock()

        def sink(line: str) -> None:
            with sink_lock:
                if sink_open:
                    on_log(mask(line, spec.secret_values))

        def body() -> None:
            try:
                outcome["exit_code"] = int(tool(spec, sink))
            except BaseException as exc:  # noqa: BLE001 - a crashing tool is a failed step, as in a container
                outcome["error"] = exc
            finally:
                finished.set()

        digest = f"sha256:fake-{spec.image}"
        deadline = time.monotonic() + spec.timeout
        threading.Thread(target=body, name=f"mao-fake-{container_id}", daemon=True).start()
        try:
            stopped_by = None
            while not finished.wait(self.poll_interval):
                if cancel.is_set() or stop.is_set():
                    stopped_by = RunStatus.CANCELLED
                elif time.monotonic() >= deadline:
                    stopped_by = RunStatus.TIMED_OUT
                if stopped_by:
                    break
        finally:
            with self._lock:
                self._running.pop(number, None)
        with sink_lock:
            sink_open = False

        result = StepResult(status=RunStatus.FAILED, image_digest=digest, container_id=container_id)
        if stopped_by == RunStatus.TIMED_OUT:
            result.status, result.exit_code = RunStatus.TIMED_OUT, 137
            result.error = f"timed out after {spec.timeout:g} s"
        elif stopped_by == RunStatus.CANCELLED:
            result.status, result.exit_code = RunStatus.CANCELLED, 137
            result.error = "cancelled"
        elif "error" in outcome:
            result.exit_code = 1
            result.error = f"exit code 1 ({type(outcome['error']).__name__}: {outcome['error']})"
        else:
            result.exit_code = int(outcome["exit_code"])  # type: ignore[call-overload]
            if result.exit_code == 0:
                result.status = RunStatus.SUCCEEDED
            else:
                result.error = f"exit code {result.exit_code}"
        return result

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
