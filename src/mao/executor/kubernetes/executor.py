"""Run steps as Kubernetes Jobs (see :mod:`mao.executor.kubernetes.manifest` for what a step
becomes): create the step's Secret and Job, watch its pod, follow the tool's log, read the
outcome from the pod's containers, and delete the Job (its pod with it) and the Secret at the
end of every step, whatever the outcome."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mao.errors import ExecutorError, InvalidInput
from mao.executor.base import LABEL_INSTANCE, LABEL_RUN, Executor, LogSink, Placement, StepResult, StepSpec, mask
from mao.executor.kubernetes import manifest
from mao.executor.kubernetes.credentials import KubernetesAccess, api_client
from mao.executor.kubernetes.manifest import FETCH, LABEL_EXECUTOR, LABEL_JOB, SEND, STEP
from mao.executor.kubernetes.watch import LogFollower, Pod, PodWatch
from mao.status import PLACED_QUEUED, PLACED_RUNNING, RunStatus

logger = logging.getLogger(__name__)

FATAL_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}
)
"""Reasons a container waits for that end the step at once: waiting longer changes nothing."""

UNSCHEDULABLE_TIMEOUT = 300.0
"""Seconds a pod may stay unschedulable (no node has what it asks) before the step fails."""

LOG_DRAIN = 10.0
"""Seconds the tool's log may still take to be read to its end once its container has ended."""

API_TIMEOUT = 30.0
"""Seconds one request to the API may take (watches and log streams excepted)."""

API_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


@dataclass
class _Progress:
    """What a step's pod has shown so far."""

    placement: Placement | None = None
    log: LogFollower | None = None
    unschedulable_since: float | None = None
    pod: Pod = field(default_factory=dict)


class KubernetesExecutor(Executor):
    """Runs each step as a Job in ``namespace`` of the cluster ``api`` talks to.

    ``helper_image`` runs the fetch and send containers (``sh``, ``tar`` and ``curl``);
    ``instance`` limits :meth:`remove_run_containers` to this instance's Jobs;
    ``unschedulable_timeout``: seconds a pod may wait for a node that has what it asks.
    A step's data travels by commit (``StepSpec.transfer``): the nodes need not see the
    instance's disk, only its API at the transfer's URLs.
    """

    name = "kubernetes"
    transfers_data = True

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str = "default",
        instance: str | None = None,
        helper_image: str = manifest.HELPER_IMAGE,
        unschedulable_timeout: float = UNSCHEDULABLE_TIMEOUT,
        where: str = "the Kubernetes API",
    ) -> None:
        self.api = api
        # the client's typed signatures want its models: the step's objects are plain manifests
        self.core: Any = client.CoreV1Api(api)
        self.batch: Any = client.BatchV1Api(api)
        self.namespace = namespace
        self.instance = instance
        self.helper_image = helper_image
        self.unschedulable_timeout = unschedulable_timeout
        self.url = where

    @classmethod
    def from_access(cls, access: KubernetesAccess, **kw: Any) -> KubernetesExecutor:
        """Connect as ``access`` says (nothing is asked of the API until a step or a ping)."""
        return cls(api_client(access), where=access.describe(), **kw)

    # ------------------------------------------------------------------ run

    def _refusal(self, spec: StepSpec) -> str | None:
        if spec.transfer is None:
            return (
                "a step on Kubernetes needs its data to travel by commit, and this step has no transfer: "
                "set exchange_url (MAO_EXCHANGE_URL) to the URL the cluster's pods reach this instance's API by"
            )
        if spec.docker_socket:
            return f"step {spec.step!r} asks for the Docker socket, which a pod on Kubernetes is not given"
        return None

    def run(self, spec: StepSpec, on_log: LogSink, cancel: threading.Event | None = None) -> StepResult:
        cancel = cancel or threading.Event()
        refused = self._refusal(spec)
        if refused:
            return StepResult(status=RunStatus.FAILED, error=refused)
        if cancel.is_set():
            return StepResult(status=RunStatus.CANCELLED, error="cancelled before it started")
        name = manifest.job_name(spec)
        try:
            secret = manifest.secret(spec, name, self.namespace)
            job = manifest.job(spec, name, self.namespace, self.helper_image)
        except InvalidInput as exc:
            return StepResult(status=RunStatus.FAILED, error=exc.message)
        created = False
        try:
            try:
                self.core.create_namespaced_secret(self.namespace, secret, _request_timeout=API_TIMEOUT)
                created = True
                self.batch.create_namespaced_job(self.namespace, job, _request_timeout=API_TIMEOUT)
            except API_ERRORS as exc:
                return StepResult(status=RunStatus.FAILED, error=f"{self.url} refused the step's Job: {_why(exc)}")
            progress = _Progress()
            self._place(spec, progress, Placement(self.name, "queued", job=name))
            return self._follow(spec, name, on_log, cancel, progress)
        finally:
            if created:
                self._delete(name)

    def _place(self, spec: StepSpec, progress: _Progress, placement: Placement) -> None:
        if placement == progress.placement:
            return
        progress.placement = placement
        if spec.on_placement is not None:
            try:
                spec.on_placement(placement)
            except Exception:  # a failing record never fails the step
                logger.exception("recording the placement of step %s failed", spec.step)

    def _follow(
        self, spec: StepSpec, name: str, on_log: LogSink, cancel: threading.Event, progress: _Progress
    ) -> StepResult:
        pods = PodWatch(self.core, self.namespace, f"{LABEL_JOB}={name}")
        pods.start()
        deadline = time.monotonic() + spec.timeout
        try:
            while True:
                stopped = self._stopped(spec, cancel, deadline, progress)
                if stopped is not None:
                    return stopped
                try:
                    pod = pods.changes.get(timeout=0.1)
                except queue.Empty:
                    pod = progress.pod
                    if not pod:
                        continue
                ended = self._look(spec, name, pod, progress, on_log)
                if ended is not None:
                    return ended
        finally:
            pods.stop()
            self._drain(progress)

    def _stopped(
        self, spec: StepSpec, cancel: threading.Event, deadline: float, progress: _Progress
    ) -> StepResult | None:
        """The result of a step stopped by a cancel or its timeout; None while neither came."""
        if cancel.is_set():
            return self._result(RunStatus.CANCELLED, RunStatus.CANCELLED.value + _held_up(progress), progress)
        if time.monotonic() >= deadline:
            return self._result(
                RunStatus.TIMED_OUT, f"timed out after {spec.timeout:g} s" + _held_up(progress), progress
            )
        return None

    def _look(self, spec: StepSpec, name: str, pod: Pod, progress: _Progress, on_log: LogSink) -> StepResult | None:
        """Take in a version of the step's pod: its placement, its log, and its end if it ended."""
        progress.pod = pod
        status = pod.get("status") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        if _started(status):
            self._place(spec, progress, Placement(self.name, PLACED_RUNNING, node=node, job=name))
        elif node and progress.placement is not None:
            self._place(spec, progress, Placement(self.name, PLACED_QUEUED, node=node, job=name))
        tool = _container(status, STEP)
        if progress.log is None and tool and (tool.get("state") or {}).keys() & {"running", "terminated"}:
            progress.log = self._follow_log(spec, _name(pod), on_log)
        if pod.get("deleted"):
            return self._gone(spec, name, progress)
        phase = status.get("phase")
        if phase == "Succeeded":
            return self._result(RunStatus.SUCCEEDED, None, progress)
        if phase == "Failed":
            return self._failed(spec, pod, progress)
        return self._pending_problem(spec, status, progress)

    def _follow_log(self, spec: StepSpec, pod: str, on_log: LogSink) -> LogFollower:
        follower = LogFollower(
            self.core, self.namespace, pod, STEP, lambda line: on_log(mask(line, spec.secret_values))
        )
        follower.start()
        return follower

    def _drain(self, progress: _Progress) -> None:
        """Let the tool's log be read to its end (at most LOG_DRAIN seconds), then stop reading."""
        follower = progress.log
        if follower is None:
            return
        follower.ended.set()
        follower.join(LOG_DRAIN)
        follower.stop_now.set()

    def _pending_problem(self, spec: StepSpec, status: dict[str, Any], progress: _Progress) -> StepResult | None:
        """A failed result for a pod that cannot start (its image, its configuration, no node)."""
        for container in _statuses(status):
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = str(waiting.get("reason") or "")
            if reason in FATAL_WAITING:
                what = (
                    f"image {spec.image!r}" if container.get("name") == STEP else f"container {container.get('name')}"
                )
                detail = str(waiting.get("message") or "")
                return self._result(
                    RunStatus.FAILED, f"{what} cannot start: {reason}" + (f": {detail}" if detail else ""), progress
                )
        scheduled = _condition(status, "PodScheduled")
        if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            now = time.monotonic()
            progress.unschedulable_since = progress.unschedulable_since or now
            if now - progress.unschedulable_since >= self.unschedulable_timeout:
                return self._result(
                    RunStatus.FAILED,
                    f"no node of the cluster can run the step (unschedulable for {self.unschedulable_timeout:g} s): "
                    + str(scheduled.get("message") or "Unschedulable"),
                    progress,
                )
        else:
            progress.unschedulable_since = None
        return None

    def _failed(self, spec: StepSpec, pod: Pod, progress: _Progress) -> StepResult:
        """The result of a pod in phase Failed: the container that failed, and why."""
        status = pod.get("status") or {}
        if status.get("reason") == "DeadlineExceeded":
            return self._result(
                RunStatus.TIMED_OUT, f"timed out after {spec.timeout:g} s (deadline of the Job)", progress
            )
        for name in (FETCH, STEP, SEND):
            ended = ((_container(status, name) or {}).get("state") or {}).get("terminated") or {}
            code = ended.get("exitCode")
            if code is None or code == 0:
                continue
            reason = str(ended.get("reason") or "")
            if name == STEP:
                error = f"exit code {code}"
                if reason == "OOMKilled":
                    limit = spec.resources.memory
                    error += " (OOMKilled: the step ran out of memory" + (f", limit {limit})" if limit else ")")
                return self._result(RunStatus.FAILED, error, progress, exit_code=int(code))
            action = "fetching the step's data from" if name == FETCH else "sending the step's result to"
            tail = self._tail(_name(pod), name)
            return self._result(
                RunStatus.FAILED, f"{action} the instance failed in the pod (exit code {code})" + tail, progress
            )
        why = ": ".join(str(part) for part in (status.get("reason"), status.get("message")) if part)
        return self._result(RunStatus.FAILED, "the step's pod failed" + (f": {why}" if why else ""), progress)

    def _gone(self, spec: StepSpec, name: str, progress: _Progress) -> StepResult:
        """The result of a step whose pod was deleted before it ended (by the Job's deadline, say)."""
        try:
            job = self.batch.read_namespaced_job(
                name, self.namespace, _preload_content=False, _request_timeout=API_TIMEOUT
            )
            conditions = (json.loads(job.data).get("status") or {}).get("conditions") or []
        except (*API_ERRORS, ValueError):
            conditions = []
        if any(c.get("reason") == "DeadlineExceeded" for c in conditions):
            return self._result(
                RunStatus.TIMED_OUT, f"timed out after {spec.timeout:g} s (deadline of the Job)", progress
            )
        return self._result(RunStatus.FAILED, "the step's pod was deleted before it ended", progress)

    def _tail(self, pod: str, container: str, lines: int = 5) -> str:
        """``: <the last lines of the container's log>``, or nothing when it cannot be read."""
        try:
            text = self.core.read_namespaced_pod_log(
                pod, self.namespace, container=container, tail_lines=lines, _request_timeout=API_TIMEOUT
            )
        except (*API_ERRORS, ValueError):
            return ""
        text = " | ".join(line.strip() for line in str(text or "").splitlines() if line.strip())
        return f": {text[-500:]}" if text else ""

    def _result(
        self, status: RunStatus, error: str | None, progress: _Progress, exit_code: int | None = None
    ) -> StepResult:
        tool = _container(progress.pod.get("status") or {}, STEP) or {}
        if exit_code is None and status == RunStatus.SUCCEEDED:
            exit_code = int(((tool.get("state") or {}).get("terminated") or {}).get("exitCode") or 0)
        return StepResult(
            status=status,
            error=error,
            exit_code=exit_code,
            image_digest=_digest(str(tool.get("imageID") or "")),
            container_id=_name(progress.pod) or None,
            node=(progress.pod.get("spec") or {}).get("nodeName"),
        )

    # ------------------------------------------------------------- cleanup

    def _delete(self, name: str) -> None:
        """Delete the step's Job (its pods with it, in the background) and Secret. Never raises."""
        try:
            self.batch.delete_namespaced_job(
                name, self.namespace, propagation_policy="Background", _request_timeout=API_TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 404:
                logger.warning("could not delete Job %s: %s", name, _why(exc))
        except API_ERRORS as exc:
            logger.warning("could not delete Job %s: %s", name, exc)
        try:
            self.core.delete_namespaced_secret(name, self.namespace, _request_timeout=API_TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                logger.warning("could not delete Secret %s: %s", name, _why(exc))
        except API_ERRORS as exc:
            logger.warning("could not delete Secret %s: %s", name, exc)

    def _selector(self, run_id: int | None) -> dict[str, str]:
        wanted = {LABEL_EXECUTOR: self.name}
        if run_id is not None:
            wanted[LABEL_RUN] = str(run_id)
        if self.instance is not None:
            wanted[LABEL_INSTANCE] = self.instance
        return wanted

    def remove_run_containers(self, run_id: int | None = None) -> int:
        """Delete this instance's step Jobs of ``run_id`` (all of them if None), with their pods
        and Secrets. Counts the Jobs."""
        wanted = self._selector(run_id)
        selector = ",".join(f"{key}={value}" for key, value in wanted.items())
        removed = 0
        try:
            jobs = self._listed(self.batch.list_namespaced_job, selector, wanted)
            secrets = self._listed(self.core.list_namespaced_secret, selector, wanted)
            for name in jobs:
                self.batch.delete_namespaced_job(
                    name, self.namespace, propagation_policy="Background", _request_timeout=API_TIMEOUT
                )
                removed += 1
            for name in secrets:
                self.core.delete_namespaced_secret(name, self.namespace, _request_timeout=API_TIMEOUT)
        except API_ERRORS as exc:
            raise ExecutorError(f"{self.url} could not be cleaned: {_why(exc)}", details={"url": self.url}) from exc
        return removed

    def _listed(self, lister: Any, selector: str, wanted: dict[str, str]) -> list[str]:
        """Names of the objects ``lister`` gives with all ``wanted`` labels (checked here too)."""
        response = lister(self.namespace, label_selector=selector, _preload_content=False, _request_timeout=API_TIMEOUT)
        names = []
        for item in json.loads(response.data).get("items") or []:
            labels = (item.get("metadata") or {}).get("labels") or {}
            if all(labels.get(key) == value for key, value in wanted.items()):
                names.append(str(item["metadata"]["name"]))
        return names

    def ping(self) -> dict[str, str]:
        """The API's version and the namespace; ExecutorError when it cannot be reached or used."""
        try:
            try:
                versions: Any = client.VersionApi(self.api)
                version = str(versions.get_code(_request_timeout=API_TIMEOUT).git_version)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                version = "unknown"  # an API without /version: can the namespace's Jobs be listed?
            self.batch.list_namespaced_job(
                self.namespace, limit=1, _preload_content=False, _request_timeout=API_TIMEOUT
            )
        except API_ERRORS as exc:
            raise ExecutorError(f"{self.url} cannot be used: {_why(exc)}", details={"url": self.url}) from exc
        return {"engine": "kubernetes", "version": version, "namespace": self.namespace}

    def close(self) -> None:
        api: Any = self.api
        api.close()


def _why(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        message = ""
        try:
            message = str(json.loads(exc.body or "{}").get("message") or "")
        except (ValueError, AttributeError):
            pass
        return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")
    return str(exc) or exc.__class__.__name__


def _name(pod: Pod) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")


def _statuses(status: dict[str, Any]) -> list[dict[str, Any]]:
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def _container(status: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in _statuses(status) if c.get("name") == name), None)


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _started(status: dict[str, Any]) -> bool:
    """Whether a container of the pod has started (the fetch, at first): the step runs."""
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return True
    return any((c.get("state") or {}).keys() & {"running", "terminated"} for c in _statuses(status))


def _held_up(progress: _Progress) -> str:
    """`` (the pod was still pending: <why>)`` for a step stopped before it ran."""
    if progress.placement is not None and progress.placement.state == PLACED_RUNNING:
        return ""
    if not progress.pod:  # the Job made no pod: admission refused it, or a quota is full
        job = progress.placement.job if progress.placement else None
        return " (the Job made no pod" + (f": see kubectl describe job {job})" if job else ")")
    status = progress.pod.get("status") or {}
    reasons = [str(((c.get("state") or {}).get("waiting") or {}).get("reason") or "") for c in _statuses(status)]
    scheduled = _condition(status, "PodScheduled") or {}
    reasons.append(str(scheduled.get("reason") or "") if scheduled.get("status") == "False" else "")
    why = ", ".join(reason for reason in reasons if reason)
    return " (the pod was still pending" + (f": {why})" if why else ")")


def _digest(image_id: str) -> str | None:
    """The image the tool ran, from its container's ``imageID`` (``docker-pullable://r@sha256:…``)."""
    if not image_id:
        return None
    return image_id.split("://", 1)[-1]
