"""The states of a run and of its steps, in one place.

``pending → running → (succeeded | failed | timed_out | cancelled | conflict | interrupted)``;
a pending run may also end ``cancelled``, ``interrupted`` or ``failed`` without running.
Terminal states are final. The store refuses any other transition.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from mao.errors import Conflict


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    CONFLICT = "conflict"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def active(self) -> bool:
        return self in ACTIVE


ACTIVE: frozenset[RunStatus] = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
TERMINAL: frozenset[RunStatus] = frozenset(set(RunStatus) - ACTIVE)

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.INTERRUPTED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.TIMED_OUT,
            RunStatus.CANCELLED,
            RunStatus.CONFLICT,
            RunStatus.INTERRUPTED,
        }
    ),
    **{state: frozenset() for state in TERMINAL},
}

EXECUTOR_OUTCOMES: frozenset[RunStatus] = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED}
)
"""What an executor may report for one step's container."""

PlacementState = Literal["queued", "running"]
"""Where an engine that queues steps has one: accepted but not started, or started."""
PLACED_QUEUED: PlacementState = "queued"
PLACED_RUNNING: PlacementState = "running"


class IllegalTransition(Conflict):
    code = "illegal_transition"


def can_transition(current: str, new: str) -> bool:
    return RunStatus(new) in TRANSITIONS[RunStatus(current)]


def check_transition(current: str, new: str, what: str = "run") -> RunStatus:
    """Returns ``new`` as a RunStatus; raises IllegalTransition when ``current → new`` is not allowed."""
    try:
        target, origin = RunStatus(new), RunStatus(current)
    except ValueError as exc:
        raise IllegalTransition(f"{what}: unknown status ({exc})") from exc
    if target not in TRANSITIONS[origin]:
        final = " (a finished run's status is final)" if origin.terminal else ""
        raise IllegalTransition(f"{what} cannot go from {origin} to {target}{final}")
    return target


def parse_status(value: str) -> RunStatus:
    """A status given by a user (API filter, CLI option); InvalidInput naming the valid ones."""
    from mao.errors import InvalidInput

    try:
        return RunStatus(value)
    except ValueError:
        raise InvalidInput(
            f"unknown run status {value!r}; use one of: " + ", ".join(s.value for s in RunStatus)
        ) from None


class FederationState(StrEnum):
    """Where a step's federation part (merge into ground-truth, ballot) stands when the
    registry was unavailable after its push: waiting, done, given up, or a merge that
    conflicted (the node branch stays pushed)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    CONFLICT = "conflict"
