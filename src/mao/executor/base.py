"""The executor interface: run one pipeline step's container and report what happened."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mao.status import EXECUTOR_OUTCOMES, PlacementState, RunStatus

PullPolicy = Literal["if-not-present", "always", "never"]
StepOutcome = RunStatus
"""One of :data:`mao.status.EXECUTOR_OUTCOMES`: succeeded, failed, timed_out, cancelled."""

LABEL_RUN = "mao.run_id"
LABEL_STEP = "mao.step"
LABEL_PIPELINE = "mao.pipeline"
LABEL_INSTANCE = "mao.instance"

OUTPUT_MOUNT = "/usr/src/app/data"
INPUT_MOUNT = "/usr/src/app/input"
DOCKER_SOCKET = "/var/run/docker.sock"

IMAGE_CHECK_TIMEOUT = 10.0
"""Seconds a check of a tool's image may take, looking it up and trying a pull."""


@dataclass(frozen=True)
class StepTransfer:
    """How a node that does not share the instance's disk gets a step's trees and returns one.

    The node sends ``Authorization: Bearer <token>`` (valid for this step only) and:
    GET ``data_url`` for a tar of the output worktree as the step starts; GET ``input_url``
    (when set) for a tar of the input view at its pinned commit; PUT ``data_url`` with a tar of
    the tree the tool left. The instance checks that tar and makes the node commit itself.
    """

    data_url: str
    token: str
    input_url: str | None = None


@dataclass(frozen=True)
class StepResources:
    """What a step asks of the engine: cpus and memory (``512m``, ``2g``) for every engine;
    a Slurm ``partition`` and generic resources (``gres``, e.g. ``gpu:1``)."""

    cpus: float | None = None
    memory: str | None = None
    partition: str | None = None
    gres: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where the engine put a step, as it reports it: ``queued`` (accepted, not started) or
    ``running``, on ``node``, as the engine's ``job`` (a Slurm job id, a Kubernetes Job, a
    Swarm service)."""

    executor: str
    state: PlacementState
    node: str | None = None
    job: str | None = None


PlacementSink = Callable[[Placement], None]

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def memory_bytes(memory: str) -> int:
    """Bytes of a step's ``memory`` (``512m``, ``2g``; a bare number is bytes; binary units)."""
    text = memory.strip().lower()
    unit = text[-1] if text and text[-1] in _UNITS else ""
    return int(text[: len(text) - len(unit)]) * _UNITS[unit]


@dataclass
class StepSpec:
    """What to run. ``command`` is a string (split like a shell would, without a shell) or a list."""

    run_id: int
    pipeline: str
    step: str
    image: str
    output_dir: Path
    input_dir: Path | None = None
    command: str | list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    docker_socket: bool = False
    timeout: float = 3600.0
    pull_policy: PullPolicy = "if-not-present"
    instance: str = ""
    secret_values: list[str] = field(default_factory=list)
    """Values that must never appear in logs: replaced by ``***`` before ``on_log`` sees a line."""
    resources: StepResources = field(default_factory=StepResources)
    transfer: StepTransfer | None = None
    """Set when the step's data travels by commit (the engine's nodes do not share the disk)."""
    on_placement: PlacementSink | None = None
    """Called by engines that queue steps each time the step's placement changes."""

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_RUN: str(self.run_id),
            LABEL_STEP: self.step,
            LABEL_PIPELINE: self.pipeline,
            LABEL_INSTANCE: self.instance,
        }


@dataclass
class StepResult:
    status: RunStatus
    exit_code: int | None = None
    image_digest: str | None = None
    error: str | None = None
    container_id: str | None = None
    node: str | None = None
    """The host that ran the step, when the engine reports it (``Mao-Node``)."""

    def __post_init__(self) -> None:
        self.status = RunStatus(self.status)
        if self.status not in EXECUTOR_OUTCOMES:
            raise ValueError(f"an executor cannot report {self.status!r} for a step")


LogSink = Callable[[str], None]


class Executor(ABC):
    """Runs containers. Implementations never raise for a step's own failure: a missing
    image, an unreachable engine, a non-zero exit all come back as a failed StepResult."""

    name = "executor"
    transfers_data = False
    """True for an engine whose nodes do not share the instance's disk: its steps get a
    :class:`StepTransfer` (``StepSpec.transfer``) and their output comes back through it."""

    @abstractmethod
    def run(self, spec: StepSpec, on_log: LogSink, cancel: threading.Event | None = None) -> StepResult:
        """Run the step to completion, calling ``on_log`` with each log line as it arrives
        (from a background thread, one call at a time)."""

    @abstractmethod
    def remove_run_containers(self, run_id: int | None = None) -> int:
        """Remove containers labelled with ``run_id`` (all MAO containers if None),
        limited to this instance's containers when the implementation knows its
        instance name. Returns how many were removed."""

    @abstractmethod
    def ping(self) -> dict[str, str]:
        """Engine name and version; raises ExecutorError when unreachable."""

    def image_problem(self, image: str, timeout: float = IMAGE_CHECK_TIMEOUT) -> str | None:
        """Why ``image`` could not run here now: it is not on the engine and a pull (given at
        most ``timeout`` seconds) did not bring it. None when it is there, was pulled, or this
        executor cannot tell; ExecutorError when the engine cannot be reached."""
        return None

    def close(self) -> None:  # pragma: no cover - trivial
        pass


def mask(line: str, secrets: list[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        if value:
            line = line.replace(value, "***")
    return line
