"""Run steps as one-task services on Docker Swarm.

Each step is a ``replicated`` service with one replica that is never restarted
(``RestartPolicy(condition="none")``), created on a manager node through its Docker API;
the swarm places the task on a node, the service's log is followed while it runs, the
step's outcome is read from the task's state, and the service is removed at the end, its
task and container with it.

The step's directories are bind-mounted from the node that runs the task, at the paths
the orchestrator gives: every node must see the instance's data at the same absolute
paths (a one-node swarm, or a filesystem shared by the nodes). Images are looked up on the
manager's engine: one there is pinned by its registry digest (a node that lacks it pulls
exactly that), or by its ID when it has none (only nodes holding that image can run it);
one missing there is left to the node, which pulls it or has it.

Not a ``replicated-job`` service: on Docker 20.10, removing one leaves its task and its
container behind (moby/moby#42789).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
from docker.types import Mount, Resources, RestartPolicy, ServiceMode
from docker.types.daemon import CancellableStream
from docker.utils import parse_bytes

from mao.errors import ExecutorError, InvalidInput
from mao.executor.base import LABEL_INSTANCE, LABEL_RUN, LogSink, StepResult, StepSpec, memory_bytes
from mao.executor.docker import (
    ENGINE_ERRORS,
    KILL_GRACE,
    DockerExecutor,
    _StepFailed,
    image_digest,
    split_command,
)
from mao.status import RunStatus

logger = logging.getLogger(__name__)

LABEL_EXECUTOR = "mao.executor"
"""Label of every service (and its container) this executor makes: ``mao.executor=swarm``."""

LABEL_SWARM_SERVICE = "com.docker.swarm.service.id"
"""The label the swarm gives a task's container: the id of its service."""

TERMINAL = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
"""Task states after which the task does nothing more."""

REMOVE_WAIT = 30.0
"""Seconds to wait, after a service is removed, for the swarm to remove its task and container."""

FIRST_POLL = 0.05
"""Seconds between the first polls of a task's state; the interval grows to ``poll_interval``."""

SERVICE_NAME_STEP = 30
"""Characters of the step's name kept in a service's name."""


@dataclass
class _Ending:
    """How a step's task ended: the task as last seen, what stopped it (None: it ended by
    itself), and, for one stopped before it had a container, what it was waiting for."""

    task: dict[str, Any] | None
    stopped_by: str | None = None
    held_up: str | None = None
    ended: bool = True


class _ServiceLog:
    """A service's log, read like a container's by the log pumps of :class:`DockerExecutor`.

    A swarm service's log stream does not end when its task does (nor when the service is
    removed): :meth:`close` ends the follow streams still open, which nothing reads anymore.
    """

    def __init__(self, client: docker.DockerClient, service_id: str) -> None:
        self._api = client.api
        self._id = service_id
        self.short_id = service_id[:10]
        self._lock = threading.Lock()
        self._open: list[Any] = []  # CancellableStreams
        self._closed = False

    def logs(self, *, stream: bool, follow: bool, stdout: bool, stderr: bool) -> Iterator[bytes]:
        options = {"stdout": stdout, "stderr": stderr}
        if not follow:
            stored: Iterator[bytes] = self._api.service_logs(self._id, is_tty=False, follow=False, **options)
            return stored
        # the SDK's service_logs gives a stream that cannot be closed from another thread
        response = self._api._get(
            self._api._url("/services/{0}/logs", self._id), params=options | {"follow": True}, stream=True
        )
        followed: Iterator[bytes] = CancellableStream(self._api._get_result_tty(True, response, False), response)
        with self._lock:
            self._open.append(followed)
            closed = self._closed
        if closed:
            _close(followed)
        return followed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            streams, self._open = self._open, []
        for followed in streams:
            _close(followed)


def _close(stream: Any) -> None:
    """End a :class:`CancellableStream` (its socket is shut down: a read in another thread ends)."""
    try:
        stream.close()
    except (OSError, docker.errors.DockerException) as exc:  # already closed, or not closable (ssh)
        logger.debug("could not close a service log stream: %s", exc)


class SwarmExecutor(DockerExecutor):
    """Runs each step as a one-task service on the Docker Swarm whose manager ``client`` talks to.

    ``network_mode``: ``"bridge"`` (the default: the nodes' default network, which is only the
    loopback on an engine started with ``--bridge=none``), ``"host"``, or the name of a swarm
    network (an attachable overlay, say); Swarm has no ``"none"`` network. ``cpus`` and
    ``memory`` (bytes, or a size such as ``"512m"``) limit each step's container;
    ``constraints`` are placement constraints (``"node.labels.gpu==yes"``). ``instance``,
    ``allow_docker_socket``, ``owner`` and ``poll_interval`` are as for :class:`DockerExecutor`
    (``poll_interval``: the longest time between two looks at a running task's state).
    """

    name = "swarm"

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        cpus: float | None = None,
        memory: int | str | None = None,
        constraints: list[str] | tuple[str, ...] = (),
        **options: Any,
    ) -> None:
        options.setdefault("poll_interval", 0.5)
        super().__init__(client, **options)
        if cpus is not None and not cpus > 0:
            raise InvalidInput(f"cpus must be a positive number, not {cpus!r}")
        try:
            self.memory = parse_bytes(memory) if isinstance(memory, str) else memory
        except docker.errors.DockerException as exc:
            raise InvalidInput(f"memory must be a number of bytes or a size such as '512m', not {memory!r}") from exc
        if self.memory is not None and self.memory <= 0:
            raise InvalidInput(f"memory must be a positive size, not {memory!r}")
        self.cpus = cpus
        self.constraints = [str(c) for c in constraints]

    @classmethod
    def from_url(cls, base_url: str | None, **kw: Any) -> SwarmExecutor:
        """Connect to the swarm manager's engine at ``base_url`` (``None``: DOCKER_HOST)."""
        executor = super().from_url(base_url, **kw)
        assert isinstance(executor, SwarmExecutor)
        return executor

    # ------------------------------------------------------------------ run

    def run(self, spec: StepSpec, on_log: LogSink, cancel: threading.Event | None = None) -> StepResult:
        cancel = cancel or threading.Event()
        output_dir = self._prepare(spec, cancel)
        if isinstance(output_dir, StepResult):
            return output_dir

        service = None
        digest: str | None = None
        try:
            try:
                image, digest = self._image(spec)
                service = self.client.services.create(image, **self._service_options(spec, output_dir))
                return self._follow_task(service, spec, on_log, cancel, digest)
            except _StepFailed as exc:
                return StepResult(status=RunStatus.FAILED, error=str(exc), image_digest=digest)
            except ENGINE_ERRORS as exc:
                return StepResult(status=RunStatus.FAILED, error=self._describe(exc), image_digest=digest)
        finally:
            if service is not None:
                self._remove_service(service)
                self._give_outputs_to_owner(spec, on_log)

    def _refusal(self, spec: StepSpec) -> str | None:
        """Why the step cannot be run at all, before anything is asked of the swarm."""
        if self.network_mode == "none":
            return (
                "Docker Swarm has no network 'none' for a service: set network_mode (MAO_NETWORK_MODE) to "
                "'bridge' (the nodes' default network), 'host', or the name of a swarm network"
            )
        return super()._refusal(spec)

    def _image(self, spec: StepSpec) -> tuple[str, str | None]:
        """The reference the service is given, and the image's digest when the manager knows it."""
        if spec.pull_policy == "always":
            found = self._pull(spec.image)
        else:
            try:
                found = self.client.images.get(spec.image)
            except docker.errors.ImageNotFound as exc:
                if spec.pull_policy == "never":
                    raise _StepFailed(
                        f"image {spec.image!r} not found: not present on the swarm manager's engine at {self.url} "
                        "and the pull policy is 'never'"
                    ) from exc
                return spec.image, None  # the node that runs the task pulls it, or has it
        repo_digests = found.attrs.get("RepoDigests") or []
        # A name alone makes every node try a pull first; a digest or an image id does not.
        return str(repo_digests[0] if repo_digests else found.id), image_digest(found.attrs)

    def _service_options(self, spec: StepSpec, output_dir: Path) -> dict[str, Any]:
        labels = {**spec.labels, LABEL_EXECUTOR: self.name}
        mounts = [
            Mount(target=bind["bind"], source=source, type="bind", read_only=bind["mode"] == "ro")
            for source, bind in self._volumes(spec, output_dir).items()
        ]
        options: dict[str, Any] = {
            "name": _service_name(spec),
            "args": split_command(spec.command),  # not command=, which would replace the entrypoint
            "env": dict(spec.env),
            "labels": labels,
            "container_labels": labels,
            "mounts": mounts,
            "mode": ServiceMode("replicated", replicas=1),
            "restart_policy": RestartPolicy(condition="none"),
            "stop_signal": "SIGKILL",  # a stop is a kill, as DockerExecutor's
        }
        if self.network_mode == "host":
            options["networks"] = ["host"]
        elif self.network_mode != "bridge":
            options["networks"] = [self.network_mode]
        # a step's own resources, else the instance's swarm_cpus and swarm_memory
        cpus = spec.resources.cpus if spec.resources.cpus is not None else self.cpus
        memory = memory_bytes(spec.resources.memory) if spec.resources.memory is not None else self.memory
        if cpus is not None or memory is not None:
            options["resources"] = Resources(
                cpu_limit=int(cpus * 1e9) if cpus is not None else None,
                mem_limit=memory,
                cpu_reservation=int(spec.resources.cpus * 1e9) if spec.resources.cpus is not None else None,
                mem_reservation=memory if spec.resources.memory is not None else None,
            )
        if self.constraints:
            options["constraints"] = list(self.constraints)
        return options

    def _follow_task(
        self, service: Any, spec: StepSpec, on_log: LogSink, cancel: threading.Event, digest: str | None
    ) -> StepResult:
        log = _ServiceLog(self.client, service.id)
        try:
            pumps = self._pump_logs(log, spec, on_log)
            ending = self._wait_for_task(service, cancel, time.monotonic() + spec.timeout)
            # the task has ended: its log is all stored, read past what the streams passed on
            now = time.monotonic()
            for pump in pumps:
                pump.finish(now)
        finally:
            log.close()
        return self._task_result(spec, ending, digest)

    def _wait_for_task(self, service: Any, cancel: threading.Event, deadline: float) -> _Ending:
        """How the task ended. Polled often at first, then every ``poll_interval``; a cancel is
        seen at once."""
        interval = FIRST_POLL
        while True:
            task = _task(service)
            if task is not None and _state(task) in TERMINAL:
                return _Ending(task)
            stopped_by = None
            if cancel.is_set():
                stopped_by = RunStatus.CANCELLED
            elif time.monotonic() >= deadline:
                stopped_by = RunStatus.TIMED_OUT
            if stopped_by:
                held_up = None if _container_id(task) else _describe_state((task or {}).get("Status") or {})
                last, ended = self._stop(service, task)
                return _Ending(last, stopped_by, held_up, ended)
            cancel.wait(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 1.5, self.poll_interval)

    def _stop(self, service: Any, task: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
        """Stop the step: kill its container when this engine has it, else take the service down
        to no replica (which stops it on any node). The task as last seen, and whether it ended."""
        if not self._kill_here(task):
            try:
                service.scale(0)
            except docker.errors.APIError as exc:
                logger.warning("could not scale service %s to 0: %s", service.id[:10], self._describe(exc))
        give_up = time.monotonic() + KILL_GRACE
        while True:
            current = _task(service)
            if current is None:  # ended, and removed with its replica
                return task, True
            if _state(current) in TERMINAL:
                return current, True
            if time.monotonic() >= give_up:
                return current, False
            time.sleep(FIRST_POLL)

    def _kill_here(self, task: dict[str, Any] | None) -> bool:
        """Kill the task's container if it is on this engine (the manager's); whether it was."""
        container_id = _container_id(task)
        if not container_id:
            return False
        try:
            self.client.api.kill(container_id)
            return True
        except docker.errors.NotFound:  # on another node
            return False
        except docker.errors.APIError as exc:  # it has just exited
            logger.debug("kill %s: %s", container_id[:12], exc)
            return True

    def _task_result(self, spec: StepSpec, ending: _Ending, digest: str | None) -> StepResult:
        status: dict[str, Any] = (ending.task or {}).get("Status") or {}
        container_id = _container_id(ending.task)
        # a task that never had a container (rejected, say) reports exit code 0: there is none; nor
        # has one still running, or gone before its end was seen
        ended_here = container_id and str(status.get("State")) in TERMINAL
        exit_code = int((status.get("ContainerStatus") or {}).get("ExitCode", -1)) if ended_here else None
        outcome: RunStatus
        error: str | None
        if ending.stopped_by is not None:
            outcome, error = RunStatus(ending.stopped_by), self._stopped(spec, status, ending)
        else:
            outcome, error = self._ended(spec, status, exit_code)
        return StepResult(
            status=outcome, exit_code=exit_code, error=error, image_digest=digest, container_id=container_id
        )

    def _stopped(self, spec: StepSpec, status: dict[str, Any], ending: _Ending) -> str:
        """The error of a step stopped by a cancel or its timeout."""
        error = f"timed out after {spec.timeout:g} s" if ending.stopped_by == RunStatus.TIMED_OUT else "cancelled"
        if ending.held_up:  # it never ran: say where it was held up
            error += f" (the task was {ending.held_up})"
        if not ending.ended:
            error += f"; the task did not stop on the swarm at {self.url}"
        return error

    def _ended(self, spec: StepSpec, status: dict[str, Any], exit_code: int | None) -> tuple[RunStatus, str | None]:
        """The outcome of a task that ended by itself: decided on its state, not its exit code."""
        state = str(status.get("State"))
        problem = str(status.get("Err") or "")
        if state == "complete":
            return RunStatus.SUCCEEDED, None
        if state == "rejected" and problem.startswith("No such image"):
            return (
                RunStatus.FAILED,
                f"image {spec.image!r} not found: the swarm node could neither find nor pull it ({problem})",
            )
        if state == "rejected":
            return RunStatus.FAILED, f"the swarm at {self.url} could not start the step: {problem or state}"
        if state == "failed" and problem == f"task: non-zero exit ({exit_code})":
            return RunStatus.FAILED, f"exit code {exit_code}"
        return RunStatus.FAILED, f"the step's task {_describe_state(status)}"

    # ------------------------------------------------------------- cleanup

    def _remove_service(self, service: Any) -> None:
        """Remove the service, wait for the swarm to remove its task, then remove a container of
        it that is left on this engine. Never raises: what stays is logged."""
        try:
            service.remove()
        except docker.errors.NotFound:
            pass
        except ENGINE_ERRORS as exc:
            logger.warning("could not remove service %s: %s", service.id[:10], self._describe(exc))
            return
        try:
            labels = service.attrs.get("Spec", {}).get("Labels") or {}
            wanted = [f"{LABEL_RUN}={labels.get(LABEL_RUN, '')}", f"{LABEL_EXECUTOR}={self.name}"]
            give_up = time.monotonic() + REMOVE_WAIT
            while any(t.get("ServiceID") == service.id for t in self.client.api.tasks(filters={"label": wanted})):
                if time.monotonic() >= give_up:
                    logger.warning("the task of removed service %s is still on the swarm", service.id[:10])
                    break
                time.sleep(FIRST_POLL)
            self._remove_containers({"label": [f"{LABEL_SWARM_SERVICE}={service.id}"]})
        except ENGINE_ERRORS as exc:
            logger.warning("could not check the removal of service %s: %s", service.id[:10], self._describe(exc))

    def _remove_containers(self, filters: dict[str, Any], skip_services: frozenset[str] = frozenset()) -> int:
        removed = 0
        for container in self.client.containers.list(all=True, filters=filters):
            if container.labels.get(LABEL_SWARM_SERVICE) in skip_services:
                continue
            try:
                container.remove(force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass  # the swarm removed it meanwhile
            except docker.errors.APIError as exc:  # its removal is already in progress
                logger.debug("remove container %s: %s", container.short_id, exc)
        return removed

    def remove_run_containers(self, run_id: int | None = None) -> int:
        """Remove this instance's step services of ``run_id`` (all of them if None) and any
        container of such a service left on this engine. Counts services and left containers."""
        labels = [f"{LABEL_EXECUTOR}={self.name}", f"{LABEL_RUN}={run_id}" if run_id is not None else LABEL_RUN]
        if self.instance is not None:
            labels.append(f"{LABEL_INSTANCE}={self.instance}")
        removed = 0
        with self._engine():
            services = self.client.services.list(filters={"label": labels})
            for service in services:
                try:
                    service.remove()
                    removed += 1
                except docker.errors.NotFound:
                    pass  # removed meanwhile
            # the swarm removes the containers of the services just removed by itself
            removed += self._remove_containers({"label": labels}, frozenset(s.id for s in services))
        return removed

    def ping(self) -> dict[str, str]:
        """The engine, its version, and its part in the swarm: ExecutorError when it is not in one."""
        answer = super().ping()
        with self._engine():
            info = self.client.info()
        swarm = info.get("Swarm") or {}
        state = str(swarm.get("LocalNodeState") or "inactive")
        if state == "inactive":
            raise ExecutorError(
                f"the container engine at {self.url} is not in swarm mode: run `docker swarm init` on it "
                "(or join it to a swarm as a manager), or choose another executor",
                details={"url": self.url},
            )
        if state != "active":
            raise ExecutorError(
                f"the container engine at {self.url} is not an active swarm node (state {state!r}"
                + (f": {swarm['Error']}" if swarm.get("Error") else "")
                + ("; unlock it with `docker swarm unlock`" if state == "locked" else "")
                + ")",
                details={"url": self.url},
            )
        manager = bool(swarm.get("ControlAvailable"))
        answer.update(swarm="manager" if manager else "worker", manager="true" if manager else "false")
        if manager:
            answer["nodes"] = str(swarm.get("Nodes", ""))
        return answer


def _service_name(spec: StepSpec) -> str:
    """A name of its own for the step's service (at most 63 characters: letters, digits, dashes)."""
    step = re.sub(r"[^a-zA-Z0-9]+", "-", spec.step).strip("-")[:SERVICE_NAME_STEP].strip("-") or "step"
    return f"mao-{spec.run_id}-{step}-{uuid.uuid4().hex[:8]}"[:63]


def _task(service: Any) -> dict[str, Any] | None:
    """The service's one task (the latest, should there be several), or None before it has one."""
    tasks: list[dict[str, Any]] = service.tasks()
    if not tasks:
        return None
    return max(tasks, key=lambda t: str(t.get("CreatedAt", "")))


def _state(task: dict[str, Any]) -> str:
    return str((task.get("Status") or {}).get("State", ""))


def _container_id(task: dict[str, Any] | None) -> str | None:
    container = ((task or {}).get("Status") or {}).get("ContainerStatus") or {}
    return str(container.get("ContainerID") or "") or None


def _describe_state(status: dict[str, Any]) -> str:
    """``ended in state failed: <error>``, or ``still pending: <why>`` for one still waiting."""
    state = str(status.get("State") or "not scheduled")
    why = str(status.get("Err") or status.get("Message") or "")
    where = f"ended in state {state}" if state in TERMINAL else f"still {state}"
    return f"{where}: {why}" if why else where
