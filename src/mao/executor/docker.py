"""Run steps as containers on a Docker-compatible engine (Docker Engine or Podman's API)."""

from __future__ import annotations

import codecs
import logging
import os
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import requests
from docker.utils import parse_repository_tag

import docker
from mao.errors import map_errors
from mao.executor.base import (
    DOCKER_SOCKET,
    IMAGE_CHECK_TIMEOUT,
    INPUT_MOUNT,
    LABEL_INSTANCE,
    LABEL_RUN,
    OUTPUT_MOUNT,
    Executor,
    LogSink,
    PullPolicy,
    StepResources,
    StepResult,
    StepSpec,
    mask,
    memory_bytes,
)
from mao.status import RunStatus
from mao.untrusted import MAX_LOG_LINE_BYTES, cap_line

logger = logging.getLogger(__name__)

ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException)
"""What the SDK raises: its own errors, and requests' for transport failures."""

KILL_GRACE = 30.0
"""Seconds to wait for a killed container to report its exit before giving up on it."""

MAX_POOL_SIZE = 64
"""Connections kept to the engine: each running step holds three (two log streams, its wait)."""

LOG_DRAIN = 2.0
"""Seconds to wait, after the container exited, for its live log streams to end; after
that the rest is read from the stored log (Podman 4.3 sometimes leaves a stream open)."""


class _StepFailed(Exception):
    """A step-level failure found before or around the container (image, engine)."""


def split_command(command: str | list[str] | None) -> list[str] | None:
    """A string is split like a shell would (without running one); a list is used as is."""
    if command is None:
        return None
    if isinstance(command, str):
        return shlex.split(command)
    return [str(part) for part in command]


def engine_url(client: docker.DockerClient) -> str:
    """The address the client talks to, as a user would write it (``unix:///...``)."""
    api = client.api
    socket_path = getattr(getattr(api, "_custom_adapter", None), "socket_path", None)
    if socket_path:
        return f"unix://{socket_path}"
    return str(api.base_url)


class _LineSplitter:
    """Turns a stream of byte chunks into masked text lines for ``on_log``.

    At most ``limit`` bytes of a line are kept while it is read, however long it grows
    before its newline: the rest is counted, not held, and the line is passed on cut, with
    a note of its full size (:func:`mao.untrusted.cap_line`)."""

    def __init__(self, on_log: LogSink, secrets: list[str], limit: int = MAX_LOG_LINE_BYTES) -> None:
        self._on_log = on_log
        self._secrets = secrets
        self._limit = limit
        self._pending = bytearray()
        self._size = 0  # bytes of the current line so far, those not kept too

    def feed(self, chunk: bytes) -> None:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            stop = len(chunk) if end < 0 else end
            self._size += stop - start
            room = self._limit - len(self._pending)
            if room > 0:
                self._pending += chunk[start : min(stop, start + room)]
            if end < 0:
                return
            self._emit()
            start = end + 1

    def close(self) -> None:
        if self._size:
            self._emit()

    def _emit(self) -> None:
        kept, size = bytes(self._pending), self._size
        self._pending, self._size = bytearray(), 0
        if size > len(kept):  # cut while it was read: no half character, no half secret at the end
            text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(kept)
            line = cap_line(_drop_secret_start(mask(text, self._secrets), self._secrets), size, self._limit)
        else:
            line = cap_line(
                mask(kept.decode("utf-8", errors="replace").removesuffix("\r"), self._secrets), None, self._limit
            )
        try:
            self._on_log(line)
        except Exception:  # a broken sink must not stop the step or lose the container
            logger.exception("log sink failed")


def _drop_secret_start(text: str, secrets: list[str]) -> str:
    """``text`` without an end that is the start of a secret (a line cut inside a secret)."""
    for secret in sorted(secrets, key=len, reverse=True):
        for length in range(min(len(secret) - 1, len(text)), 0, -1):
            if text.endswith(secret[:length]):
                text = text[:-length]
                break
    return text


def _engine_error_in_stream(chunk: bytes) -> bool:
    """Whether a log chunk is Podman's error (``{"cause": …, "message": "failed to obtain logs
    for Container …", "response": 500}``) written into a stream it had answered with 200."""
    return b'"response":500' in chunk and b"failed to obtain logs for Container" in chunk


class _LogPump:
    """Follows one output stream of a container (stdout or stderr) and passes on its lines.

    The two streams are read separately, so a line never mixes text from both (Podman
    may interleave a line without newline from one with the other's next line).
    """

    def __init__(self, container: Any, stream: str, sink: LogSink, secrets: list[str]) -> None:
        self.container = container
        self.stream = stream
        self.lines = _LineSplitter(sink, secrets)
        self.received = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()  # one reader at a time feeds the lines
        self._abandoned = False
        self.thread = threading.Thread(target=self._follow, name=f"mao-{stream}-{container.short_id}", daemon=True)

    def _read(self, follow: bool) -> None:
        """Read the stream from its start, passing on only what has not arrived yet."""
        position = 0
        chunks: Iterator[bytes] = self.container.logs(
            stream=True, follow=follow, stdout=self.stream == "stdout", stderr=self.stream == "stderr"
        )
        for chunk in chunks:
            if _engine_error_in_stream(chunk):
                # Podman answers a follow of a container that has just exited with 200 and then
                # writes its error into the stream: no output of the tool; the stored log is
                # read again by finish()
                raise docker.errors.APIError(chunk.decode("utf-8", "replace").strip())
            with self._lock:
                if follow and self._abandoned:
                    return
                end = position + len(chunk)
                if end > self.received:
                    self.lines.feed(chunk[max(0, self.received - position) :])
                    self.received = end
                position = end

    def _follow(self) -> None:
        while True:
            try:
                self._read(follow=True)
                return
            except requests.Timeout:
                # Podman sends no response headers before the first output: a stream
                # silent for the client's timeout is opened again.
                if self._abandoned:
                    return
            except BaseException as exc:  # noqa: BLE001 - reported by finish()
                self.error = exc
                return

    def finish(self, deadline: float) -> None:
        """Wait for the stream to end, pass on what it missed, then the last partial line."""
        self.thread.join(max(0.0, deadline - time.monotonic()))
        name = f"{self.stream} of {self.container.short_id}"
        with self._lock:
            self._abandoned = True  # a stream still open passes on nothing more
        if self.thread.is_alive():
            logger.debug("log stream %s still open; reading the stored log instead", name)
        elif self.error is not None:
            logger.warning("log stream %s broke: %s", name, self.error)
        # A stream following a container can end before the engine has stored the last
        # output of a container that exits at once (Docker 20.10 lost a final line without
        # newline). Reading the stored log again, past what arrived, closes that gap.
        try:
            self._read(follow=False)
        except ENGINE_ERRORS as exc:
            logger.warning("could not read the rest of log stream %s: %s", name, exc)
        with self._lock:
            self.lines.close()


class _Watch(threading.Thread):
    """Runs one blocking engine call (the container's wait) off the calling thread."""

    def __init__(self, name: str, target: Any) -> None:
        super().__init__(name=name, daemon=True)
        self._target_call = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_call()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, never lost
            self.error = exc


class DockerExecutor(Executor):
    """Runs each step in its own container, streams its logs, and always removes it.

    ``network_mode`` is the steps' network: ``"bridge"`` (the engine's default network, of
    their own), ``"none"``, the name of another network, or ``"host"`` (an explicit opt-in:
    steps then reach whatever listens on the host's loopback).
    ``owner`` is the ``(uid, gid)`` that output files are given to afterwards
    (default: this process's). ``instance``, when set, limits
    :meth:`remove_run_containers` to containers labelled with this instance name, so
    instances sharing one engine do not remove each other's containers.
    """

    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        allow_docker_socket: bool = False,
        network_mode: str = "bridge",
        owner: tuple[int, int] | None = None,
        poll_interval: float = 0.2,
        instance: str | None = None,
    ) -> None:
        self.client = client
        self.allow_docker_socket = allow_docker_socket
        self.network_mode = network_mode
        self.owner = owner if owner is not None else (os.getuid(), os.getgid())
        self.poll_interval = poll_interval
        self.instance = instance
        self.url = engine_url(client)

    @classmethod
    def from_url(cls, base_url: str | None, **kw: Any) -> DockerExecutor:
        """Connect to the engine at ``base_url`` (``None``: the environment's DOCKER_HOST)."""
        where = base_url or os.environ.get("DOCKER_HOST") or "the default Docker socket"
        with map_errors("engine", f"the container engine at {where}", details={"url": where}):
            if base_url is None:
                client = docker.from_env(max_pool_size=MAX_POOL_SIZE)
            else:
                client = docker.DockerClient(base_url=base_url, max_pool_size=MAX_POOL_SIZE)
        return cls(client, **kw)

    # ------------------------------------------------------------------ run

    def _refusal(self, spec: StepSpec) -> str | None:
        """Why the step cannot be run at all, before anything is asked of the engine."""
        if spec.docker_socket and not self.allow_docker_socket:
            return (
                f"step {spec.step!r} asks for the Docker socket, which this instance does not "
                "allow (enable allow_docker_socket to permit it)"
            )
        try:
            split_command(spec.command)
        except ValueError as exc:
            return f"cannot split command {spec.command!r}: {exc}"
        return None

    def _prepare(self, spec: StepSpec, cancel: threading.Event) -> StepResult | Path:
        """The step's output directory, made; or the result of a step that cannot start
        (refused, cancelled already, no output directory)."""
        refused = self._refusal(spec)
        if refused:
            return StepResult(status=RunStatus.FAILED, error=refused)
        if cancel.is_set():
            return StepResult(status=RunStatus.CANCELLED, error="cancelled before it started")
        output_dir = Path(spec.output_dir).resolve()
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return StepResult(status=RunStatus.FAILED, error=f"cannot create the output directory {output_dir}: {exc}")
        return output_dir

    def run(self, spec: StepSpec, on_log: LogSink, cancel: threading.Event | None = None) -> StepResult:
        cancel = cancel or threading.Event()
        output_dir = self._prepare(spec, cancel)
        if isinstance(output_dir, StepResult):
            return output_dir
        command = split_command(spec.command)  # it splits: _refusal checked it

        container = None
        digest: str | None = None
        try:
            try:
                self._check_network()
                image = self._ensure_image(spec.image, spec.pull_policy)
                digest = image_digest(image.attrs)
                container = self.client.containers.create(
                    image=spec.image,
                    command=command,
                    environment=dict(spec.env),
                    labels=spec.labels,
                    volumes=self._volumes(spec, output_dir),
                    network_mode=self.network_mode,
                    detach=True,
                    **step_limits(spec.resources),
                )
                return self._supervise(container, spec, on_log, cancel, digest)
            except _StepFailed as exc:
                return StepResult(
                    status=RunStatus.FAILED,
                    error=str(exc),
                    image_digest=digest,
                    container_id=container.id if container else None,
                )
            except ENGINE_ERRORS as exc:
                return StepResult(
                    status=RunStatus.FAILED,
                    error=self._describe(exc),
                    image_digest=digest,
                    container_id=container.id if container else None,
                )
        finally:
            if container is not None:
                self._remove(container)
                self._give_outputs_to_owner(spec, on_log)

    def _check_network(self) -> None:
        """One clear error when the engine has no network of the configured name (an
        engine started without a bridge has no ``bridge`` network)."""
        mode = self.network_mode
        if mode in ("host", "none") or mode.startswith(("container:", "service:")):
            return
        try:
            self.client.networks.get(mode)
        except docker.errors.NotFound:
            raise _StepFailed(
                f"the container engine at {self.url} has no network {mode!r} for the steps: start the engine "
                "with a bridge network (dockerd without --bridge=none, e.g. --bip 172.31.77.1/24; "
                "scripts/services.sh does), or set network_mode (MAO_NETWORK_MODE) to an existing network "
                "or 'none' ('host' lets steps reach the host's loopback)"
            ) from None

    def _volumes(self, spec: StepSpec, output_dir: Path) -> dict[str, dict[str, str]]:
        volumes = {str(output_dir): {"bind": OUTPUT_MOUNT, "mode": "rw"}}
        if spec.input_dir is not None:
            volumes[str(Path(spec.input_dir).resolve())] = {"bind": INPUT_MOUNT, "mode": "ro"}
        if spec.docker_socket:  # only reached when allowed
            # The step gets the socket of the engine that runs it, wherever that listens.
            source = self.url.removeprefix("unix://") if self.url.startswith("unix://") else DOCKER_SOCKET
            volumes[source] = {"bind": DOCKER_SOCKET, "mode": "rw"}
        return volumes

    def _supervise(
        self,
        container: Any,
        spec: StepSpec,
        on_log: LogSink,
        cancel: threading.Event,
        digest: str | None,
    ) -> StepResult:
        container.start()
        deadline = time.monotonic() + spec.timeout
        pumps = self._pump_logs(container, spec, on_log)
        waiter = _Watch(f"mao-wait-{container.short_id}", container.wait)
        waiter.start()
        stopped_by = self._wait(container, waiter, cancel, deadline)
        drain_until = time.monotonic() + LOG_DRAIN
        for pump in pumps:
            pump.finish(drain_until)
        return self._result(container, spec, waiter, stopped_by, digest)

    @staticmethod
    def _pump_logs(container: Any, spec: StepSpec, on_log: LogSink) -> list[_LogPump]:
        """Threads reading the container's stdout and stderr into ``on_log``, started."""
        sink_lock = threading.Lock()

        def sink(line: str) -> None:  # one call at a time, whichever stream it comes from
            with sink_lock:
                on_log(line)

        pumps = [_LogPump(container, name, sink, spec.secret_values) for name in ("stdout", "stderr")]
        for pump in pumps:
            pump.thread.start()
        return pumps

    def _wait(self, container: Any, waiter: _Watch, cancel: threading.Event, deadline: float) -> str | None:
        """Wait for the container to exit; killed when cancelled or past ``deadline``: the
        status that stopped it (None: it exited by itself)."""
        stopped_by: str | None = None
        while waiter.is_alive():
            if cancel.is_set():
                stopped_by = RunStatus.CANCELLED
            elif time.monotonic() >= deadline:
                stopped_by = RunStatus.TIMED_OUT
            if stopped_by:
                self._kill(container)
                waiter.join(KILL_GRACE)
                break
            waiter.join(self.poll_interval)
        return stopped_by

    def _result(
        self, container: Any, spec: StepSpec, waiter: _Watch, stopped_by: str | None, digest: str | None
    ) -> StepResult:
        """The step's result from how the container ended."""
        result = StepResult(status=RunStatus.FAILED, image_digest=digest, container_id=container.id)
        if stopped_by == RunStatus.TIMED_OUT:
            result.status = RunStatus.TIMED_OUT
            result.error = f"timed out after {spec.timeout:g} s"
        elif stopped_by == RunStatus.CANCELLED:
            result.status = RunStatus.CANCELLED
            result.error = "cancelled"
        if waiter.is_alive():
            result.error = ((result.error or "") + "; " if stopped_by else "") + (
                f"container {container.short_id} did not stop on the engine at {self.url}"
            )
            return result
        if waiter.error is not None:
            if isinstance(waiter.error, ENGINE_ERRORS):
                result.error = self._describe(waiter.error)
                return result
            raise waiter.error
        exit_code = int((waiter.result or {}).get("StatusCode", -1))
        result.exit_code = exit_code
        if stopped_by is None:
            if exit_code == 0:
                result.status = RunStatus.SUCCEEDED
            else:
                result.error = f"exit code {exit_code}"
        return result

    def _ensure_image(self, image: str, policy: PullPolicy) -> Any:
        if policy == "always":
            return self._pull(image)
        try:
            return self.client.images.get(image)
        except docker.errors.ImageNotFound as exc:
            if policy == "never":
                raise _StepFailed(
                    f"image {image!r} not found: not present on the engine at {self.url} and the pull policy is 'never'"
                ) from exc
        return self._pull(image)

    def _pull(self, image: str) -> Any:
        # The SDK's images.pull() ignores errors reported inside the progress stream
        # (Podman reports a refused registry that way, with status 200), so read it here.
        repository, tag = parse_repository_tag(image)
        tag = tag or "latest"
        reference = f"{repository}@{tag}" if tag.startswith("sha256:") else f"{repository}:{tag}"
        try:
            for event in self.client.api.pull(repository, tag=tag, stream=True, decode=True):
                error = isinstance(event, dict) and (
                    event.get("error") or (event.get("errorDetail") or {}).get("message")
                )
                if error:
                    raise _StepFailed(f"image {image!r} not found: pull failed: {error}")
            return self.client.images.get(reference)
        except docker.errors.APIError as exc:
            raise _StepFailed(f"image {image!r} not found: pull failed: {_explain(exc)}") from exc

    def _kill(self, container: Any) -> None:
        try:
            container.kill()
        except docker.errors.APIError as exc:  # already exited, or gone
            logger.debug("kill %s: %s", container.short_id, _explain(exc))
        except ENGINE_ERRORS as exc:
            logger.warning("kill %s failed: %s", container.short_id, self._describe(exc))

    def _remove(self, container: Any) -> None:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except ENGINE_ERRORS as exc:
            logger.warning("could not remove container %s: %s", container.short_id, self._describe(exc))

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, requests.ConnectionError):
            return f"cannot reach the container engine at {self.url}: {exc}"
        if isinstance(exc, docker.errors.APIError):
            return f"container engine at {self.url} refused: {_explain(exc)}"
        return f"container engine at {self.url} failed: {exc}"

    # ------------------------------------------------------------ ownership

    def _give_outputs_to_owner(self, spec: StepSpec, on_log: LogSink) -> None:
        """Make every file under ``output_dir`` owned by ``self.owner``. Never fails the step."""
        uid, gid = self.owner
        output_dir = Path(spec.output_dir).resolve()
        try:
            if not _needs_chown(output_dir, uid, gid):
                return
            if _is_root():
                _chown_tree(output_dir, uid, gid)
            else:
                self._chown_in_container(spec, output_dir, uid, gid)
        except (OSError, _StepFailed, *ENGINE_ERRORS) as exc:
            message = f"warning: could not give the output files to {uid}:{gid}: {exc}"
            logger.warning("%s (step %s, run %s)", message, spec.step, spec.run_id)
            try:
                on_log(message)
            except Exception:
                logger.exception("log sink failed")

    def _chown_in_container(self, spec: StepSpec, output_dir: Path, uid: int, gid: int) -> None:
        """Not root here, so let the engine (root) do it, with the step's own image."""
        helper = self.client.containers.create(
            image=spec.image,
            entrypoint=["chown"],
            command=["-R", f"{uid}:{gid}", OUTPUT_MOUNT],
            user="0:0",
            labels=spec.labels,
            volumes={str(output_dir): {"bind": OUTPUT_MOUNT, "mode": "rw"}},
            network_mode="none",
            detach=True,
        )
        try:
            helper.start()
            status = helper.wait(timeout=120).get("StatusCode", -1)
            if status != 0:
                output = helper.logs().decode("utf-8", errors="replace").strip()
                raise _StepFailed(f"chown in a helper container exited {status}: {output}")
        finally:
            self._remove(helper)

    # ------------------------------------------------------------- cleanup

    def _engine(self) -> map_errors:
        """Engine failures of a call made for the orchestrator become ExecutorError."""
        return map_errors("engine", f"the container engine at {self.url}", details={"url": self.url})

    def remove_run_containers(self, run_id: int | None = None) -> int:
        filters = [f"{LABEL_RUN}={run_id}" if run_id is not None else LABEL_RUN]
        if self.instance is not None:
            filters.append(f"{LABEL_INSTANCE}={self.instance}")
        removed = 0
        with self._engine():
            containers = self.client.containers.list(all=True, filters={"label": filters})
            for container in containers:
                try:
                    container.remove(force=True, v=True)
                    removed += 1
                except docker.errors.NotFound:
                    pass  # went away by itself meanwhile
        return removed

    def ping(self) -> dict[str, str]:
        with self._engine():
            version = self.client.version()
        names = [str((version.get("Platform") or {}).get("Name", ""))]
        names += [str(c.get("Name", "")) for c in version.get("Components") or []]
        engine = "podman" if any("podman" in n.lower() for n in names) else "docker"
        return {"engine": engine, "version": str(version.get("Version", "unknown"))}

    def image_problem(self, image: str, timeout: float = IMAGE_CHECK_TIMEOUT) -> str | None:
        """Looks the image up, and if the engine lacks it tries a pull, stopped after ``timeout``
        seconds (the pull's own progress, or a thread left waiting on a silent engine)."""
        found: dict[str, Any] = {}
        stop = threading.Event()

        def check() -> None:
            try:
                found["problem"] = self._find_or_pull(image, stop)
            except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, which maps it
                found["error"] = exc

        worker = threading.Thread(target=check, name="image-check", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            stop.set()
            return (
                f"image {image!r} is not on the container engine at {self.url}, "
                f"and pulling it did not finish within {timeout:g} s"
            )
        if "error" in found:
            with self._engine():
                raise found["error"]
        problem: str | None = found.get("problem")
        return problem

    def _find_or_pull(self, image: str, stop: threading.Event) -> str | None:
        try:
            self.client.images.get(image)
            return None
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:  # e.g. a reference the engine cannot parse
            return f"the container engine at {self.url} refuses image {image!r}: {_explain(exc)}"
        repository, tag = parse_repository_tag(image)
        try:
            events = self.client.api.pull(repository, tag=tag or "latest", stream=True, decode=True)
            try:
                for event in events:
                    if stop.is_set():  # the caller has answered already: leave the pull
                        return None
                    error = isinstance(event, dict) and (
                        event.get("error") or (event.get("errorDetail") or {}).get("message")
                    )
                    if error:
                        return f"image {image!r} is not on the container engine at {self.url} and could not be pulled: {error}"
            finally:
                events.close()
        except docker.errors.APIError as exc:
            return (
                f"image {image!r} is not on the container engine at {self.url} and could not be pulled: {_explain(exc)}"
            )
        return None

    def close(self) -> None:
        self.client.close()


def image_digest(attrs: dict[str, Any]) -> str | None:
    """The image's registry digest when it has one, else its local ID (``sha256:...``)."""
    repo_digests = attrs.get("RepoDigests") or []
    if repo_digests:
        return str(repo_digests[0])
    return attrs.get("Id")


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


def _is_root() -> bool:
    return os.geteuid() == 0


def _walk(root: Path) -> Iterator[Path]:
    yield root
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        for name in dirnames + filenames:
            yield Path(dirpath, name)


def _raise(exc: OSError) -> None:
    raise exc


def _needs_chown(root: Path, uid: int, gid: int) -> bool:
    """True when anything under ``root`` is owned by someone else (or cannot be read)."""
    try:
        for path in _walk(root):
            st = path.lstat()
            if st.st_uid != uid or st.st_gid != gid:
                return True
    except PermissionError:
        return True
    return False


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in _walk(root):
        os.chown(path, uid, gid, follow_symlinks=False)


def step_limits(resources: StepResources) -> dict[str, Any]:
    """The container limits of a step's ``resources`` (cpus, memory), as docker-py takes them."""
    limits: dict[str, Any] = {}
    if resources.cpus is not None:
        limits["nano_cpus"] = int(resources.cpus * 1e9)
    if resources.memory is not None:
        limits["mem_limit"] = memory_bytes(resources.memory)
    return limits
