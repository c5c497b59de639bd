"""Run steps on an executor service (``maoctl executor serve``) over HTTP.

The orchestrator uses this executor when ``executor_url`` is set: each step is sent to
the service, which runs its container on the engine next to it, and the step's log
lines are polled back in order, so the runner sees what it would see from a local
:class:`~mao.executor.docker.DockerExecutor`.

Paths are not copied: a step's ``output_dir`` and ``input_dir`` are sent as they are
and bind-mounted by the service into the container. The executor service and the
orchestrator must therefore see the datasets at the same absolute paths, e.g. the
instance's data volume mounted at the same path in both containers of a compose
deployment (and, when the service talks to the engine through its socket, at the same
path on the engine's host, since the engine resolves bind mounts there).

Other things both sides must share: the service's token (which it always requires; this
client sends it as ``Authorization: Bearer``): ``executor_token`` when configured, else
the one the service generated into ``<data_dir>/executor-token``, read from the same data
directory; and ``instance_name`` (the service only removes containers labelled with its
own instance name). The service only mounts directories under its data root
(``executor_data_root``, default its data directory).

An unreachable service never raises from :meth:`RemoteExecutor.run`: it comes back as
a failed step naming the URL, at once when the step cannot be started, or after
``grace`` seconds without contact while the step runs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from mao.errors import ExecutorError, map_errors
from mao.executor.base import Executor, LogSink, StepResult, StepSpec, mask
from mao.status import EXECUTOR_OUTCOMES, RunStatus
from mao.untrusted import cap_line

log = logging.getLogger(__name__)

OUTCOMES = frozenset(s.value for s in EXECUTOR_OUTCOMES)

POLL_INTERVAL = 0.2
"""Seconds between two polls of a running step's log."""

GRACE = 60.0
"""Seconds a running step's service may stay unreachable before the step is given up as failed."""

BATCH = 1000
"""Log lines asked for per poll."""

FORGET_TIMEOUT = 5.0
"""Seconds to wait for the service to drop a finished step (it would drop it later anyway)."""


class _Unreachable(Exception):
    """No answer from the service, or an answer from a proxy that it is down (502/503/504)."""


class RemoteExecutor(Executor):
    """An :class:`Executor` that is the client of an executor service."""

    name = "remote"

    def __init__(
        self,
        client: httpx.Client,
        *,
        poll_interval: float = POLL_INTERVAL,
        grace: float = GRACE,
        batch: int = BATCH,
    ) -> None:
        self.client = client
        self.poll_interval = poll_interval
        self.grace = grace
        self.batch = batch
        self.url = str(client.base_url).rstrip("/")

    @classmethod
    def from_url(cls, url: str, token: str | None = None, timeout: float = 30, **kw: Any) -> RemoteExecutor:
        """A client of the service at ``url`` (``http://HOST:PORT``), sending ``token`` if given."""
        if not url.startswith(("http://", "https://")):
            raise ExecutorError(
                f"invalid executor URL {url!r}: give http://HOST:PORT of the executor service", details={"url": url}
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            client = httpx.Client(base_url=url, headers=headers, timeout=timeout)
        except (httpx.InvalidURL, ValueError) as exc:
            raise ExecutorError(f"invalid executor URL {url!r}: {exc}", details={"url": url}) from exc
        return cls(client, **kw)

    # ------------------------------------------------------------------ run

    def run(self, spec: StepSpec, on_log: LogSink, cancel: threading.Event | None = None) -> StepResult:
        cancel = cancel or threading.Event()
        if cancel.is_set():
            return StepResult(status=RunStatus.CANCELLED, error="cancelled before it started")
        try:
            response = self.client.post("/steps", json=spec_to_json(spec))
        except httpx.HTTPError as exc:
            return StepResult(status=RunStatus.FAILED, error=f"cannot reach the executor service at {self.url}: {exc}")
        if response.is_error:
            return StepResult(
                status=RunStatus.FAILED,
                error=f"the executor service at {self.url} refused the step: {_message(response)}",
            )
        try:
            step_id = str(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            return StepResult(
                status=RunStatus.FAILED,
                error=f"the executor service at {self.url} answered without a step id: {response.text[:200]}",
            )
        try:
            return self._follow(step_id, spec, on_log, cancel)
        finally:
            self._forget(step_id)

    def _follow(self, step_id: str, spec: StepSpec, on_log: LogSink, cancel: threading.Event) -> StepResult:
        """Pass on the step's log lines in order until it finished, then fetch its result."""
        after = 0
        cancel_sent = False
        lost_since: float | None = None
        while True:
            more = False
            try:
                if cancel.is_set() and not cancel_sent:
                    self._call("POST", f"/steps/{step_id}/cancel")
                    cancel_sent = True
                body = self._call("GET", f"/steps/{step_id}/logs", params={"after": after, "limit": self.batch})
                lines = body.get("lines") or []
                for number, text in lines:
                    if number > after + 1:
                        self._emit(on_log, f"[{number - after - 1} log lines dropped by the executor service]")
                    self._emit(on_log, cap_line(mask(str(text), spec.secret_values)))
                    after = number
                if body.get("done"):
                    return _result(self._call("GET", f"/steps/{step_id}"), self.url)
                more = len(lines) >= self.batch
                lost_since = None
            except _Unreachable as exc:
                now = time.monotonic()
                lost_since = lost_since if lost_since is not None else now
                if now - lost_since >= self.grace:
                    return StepResult(
                        status=RunStatus.FAILED,
                        error=f"lost contact with the executor service at {self.url} for {self.grace:g} s "
                        f"({exc}); step {step_id} may still be running there",
                    )
            except _Refused as exc:
                return StepResult(status=RunStatus.FAILED, error=str(exc))
            if not more:
                time.sleep(self.poll_interval)

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """One request; its JSON body, or _Unreachable (may pass) or _Refused (will not)."""
        try:
            response = self.client.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise _Unreachable(f"{exc.__class__.__name__}: {exc}") from exc
        if response.status_code in (502, 503, 504):
            raise _Unreachable(f"{response.status_code}: {_message(response)}")
        if response.status_code == 404:
            raise _Refused(
                f"the executor service at {self.url} no longer knows this step (was it restarted?): "
                f"{_message(response)}"
            )
        if response.is_error:
            raise _Refused(f"the executor service at {self.url} refused {method} {path}: {_message(response)}")
        try:
            body = response.json()
        except ValueError as exc:
            raise _Refused(f"the executor service at {self.url} answered {method} {path} with no JSON") from exc
        if not isinstance(body, dict):
            raise _Refused(f"the executor service at {self.url} answered {method} {path} with {body!r}")
        return body

    def _forget(self, step_id: str) -> None:
        """Let the service drop a finished step at once (it would after a while anyway)."""
        try:
            self.client.delete(f"/steps/{step_id}", timeout=FORGET_TIMEOUT)
        except httpx.HTTPError as exc:
            log.debug("could not delete step %s on %s: %s", step_id, self.url, exc)

    @staticmethod
    def _emit(on_log: LogSink, line: str) -> None:
        try:
            on_log(line)
        except Exception:  # a broken sink must not lose the step
            log.exception("log sink failed")

    # -------------------------------------------------------------- cleanup

    def _service(self) -> map_errors:
        return map_errors(
            "http",
            f"cannot reach the executor service at {self.url}: {{error}}",
            error=ExecutorError,
            details={"url": self.url},
        )

    def remove_run_containers(self, run_id: int | None = None) -> int:
        with self._service():
            response = self.client.post("/containers/remove", json={"run_id": run_id})
        if response.is_error:
            raise ExecutorError(
                f"the executor service at {self.url} could not remove containers: {_message(response)}",
                details={"url": self.url},
            )
        return int(response.json().get("removed", 0))

    def ping(self) -> dict[str, str]:
        with self._service():
            response = self.client.get("/health")
        if response.is_error:
            raise ExecutorError(
                f"the executor service at {self.url} is unhealthy: {_message(response)}", details={"url": self.url}
            )
        body = response.json()
        return {
            "engine": str(body.get("engine", "unknown")),
            "version": str(body.get("version", "unknown")),
            "url": self.url,
        }

    def close(self) -> None:
        self.client.close()


class _Refused(Exception):
    """An answer that polling again will not change (401, 404, 4xx, no JSON)."""


def spec_to_json(spec: StepSpec) -> dict[str, Any]:
    """The body of ``POST /steps``."""
    return {
        "run_id": spec.run_id,
        "pipeline": spec.pipeline,
        "step": spec.step,
        "image": spec.image,
        "output_dir": str(spec.output_dir),
        "input_dir": str(spec.input_dir) if spec.input_dir is not None else None,
        "command": spec.command,
        "env": dict(spec.env),
        "docker_socket": spec.docker_socket,
        "timeout": spec.timeout,
        "pull_policy": spec.pull_policy,
        "instance": spec.instance,
        "secret_values": list(spec.secret_values),
        # only when set: a service of an earlier version takes the steps that ask for nothing
        **{k: v for k, v in (("cpus", spec.resources.cpus), ("memory", spec.resources.memory)) if v is not None},
    }


def _result(body: dict[str, Any], url: str) -> StepResult:
    status = body.get("status")
    if status not in OUTCOMES:
        return StepResult(
            status=RunStatus.FAILED, error=f"the executor service at {url} reported step status {status!r}"
        )
    exit_code = body.get("exit_code")
    return StepResult(
        status=status,
        exit_code=int(exit_code) if exit_code is not None else None,
        image_digest=body.get("image_digest"),
        error=body.get("error"),
        container_id=body.get("container_id"),
    )


def _message(response: httpx.Response) -> str:
    """The message of the JSON error shape, or the start of whatever came back."""
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return f"{error['message']} (HTTP {response.status_code})"
    except (ValueError, AttributeError):
        pass
    text = response.text.strip()[:200]
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")
