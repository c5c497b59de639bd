"""The one RunStatus enum: terminal set, transitions, and that no status literal lives elsewhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mao.errors import InvalidInput
from mao.status import (
    ACTIVE,
    EXECUTOR_OUTCOMES,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    RunStatus,
    can_transition,
    check_transition,
    parse_status,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "mao"


def test_sets_partition_the_states() -> None:
    assert {RunStatus.PENDING, RunStatus.RUNNING} == ACTIVE
    assert set(RunStatus) == ACTIVE | TERMINAL and not ACTIVE & TERMINAL
    assert EXECUTOR_OUTCOMES < TERMINAL
    assert RunStatus.CONFLICT.terminal and RunStatus.RUNNING.active and not RunStatus.FAILED.active
    assert RunStatus("timed_out") == "timed_out" and f"{RunStatus.TIMED_OUT}" == "timed_out"


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("pending", "running"),
        ("pending", "cancelled"),
        ("pending", "interrupted"),
        ("pending", "failed"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("running", "timed_out"),
        ("running", "cancelled"),
        ("running", "conflict"),
        ("running", "interrupted"),
    ],
)
def test_allowed(current: str, new: str) -> None:
    assert can_transition(current, new)
    assert check_transition(current, new) is RunStatus(new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("pending", "succeeded"),
        ("pending", "timed_out"),
        ("pending", "conflict"),
        ("pending", "pending"),
        ("running", "pending"),
        ("running", "running"),
        *((t.value, s.value) for t in sorted(TERMINAL) for s in RunStatus),  # sorted: one order in every worker
    ],
)
def test_refused(current: str, new: str) -> None:
    assert not can_transition(current, new)
    with pytest.raises(IllegalTransition, match=f"from {current} to {new}"):
        check_transition(current, new)


def test_terminal_states_have_no_way_out() -> None:
    assert all(TRANSITIONS[state] == frozenset() for state in TERMINAL)


def test_parse_status_names_the_valid_ones() -> None:
    assert parse_status("failed") is RunStatus.FAILED
    with pytest.raises(InvalidInput, match="succeeded"):
        parse_status("done")


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    """String constants of the code, without docstrings and error messages."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            skip.add(id(body[0].value))
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and t.attr == "error" for t in node.targets
        ):
            skip.add(id(node.value))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip]


# outcomes of `maoctl instance init` per pipeline, not states of a run
# etcd.py: "succeeded" of etcd's transaction API; swarm.py: the states of Swarm's tasks ("failed");
# kubernetes/executor.py: a container's states ("running", "terminated"); triggers/state.py and
# pipeline_cmds.py: a trigger's change still "pending" (seen, not yet run for)
NOT_RUN_STATES = {
    "cli/init_cmd.py",
    "registry/etcd.py",
    "executor/swarm.py",
    "executor/kubernetes/executor.py",
    "triggers/state.py",
    "cli/pipeline_cmds.py",
}


def test_no_status_literals_outside_status_py() -> None:
    names = {s.value for s in RunStatus} - {"conflict"}  # "conflict" is also an error code
    found = []
    for path in SRC.rglob("*.py"):
        relative = str(path.relative_to(SRC))
        if path.name == "status.py" or relative in NOT_RUN_STATES:
            continue
        for node in _string_constants(ast.parse(path.read_text())):
            if node.value in names:
                found.append(f"{relative}:{node.lineno}: {node.value!r}")
    assert found == []
