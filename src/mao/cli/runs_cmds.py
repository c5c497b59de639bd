"""``maoctl runs``: run history and logs."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from mao.cli import output
from mao.cli.state import JsonOpt, State, state
from mao.status import ACTIVE as STATUS_ACTIVE
from mao.status import RunStatus

runs_app = typer.Typer(help="Run history: list, show, logs, cancel.", no_args_is_help=True)

S = RunStatus
ACTIVE = frozenset(s.value for s in STATUS_ACTIVE)
STYLE: dict[str, str] = {
    S.SUCCEEDED: "green",
    S.RUNNING: "cyan",
    S.PENDING: "dim",
    S.FAILED: "red",
    S.TIMED_OUT: "red",
    S.CONFLICT: "yellow",
    S.CANCELLED: "yellow",
    S.INTERRUPTED: "yellow",
}


def _status(status: str) -> str:
    return f"[{STYLE.get(status, 'white')}]{status}[/]"


def _short(sha: str | None) -> str:
    return sha[:10] if sha else ""


def _print_line(console: Any, line: dict[str, Any]) -> None:
    """``step | line``; a retried step's container lines say their attempt from the second on (``step#2``)."""
    console.print(f"{_where(line)} | {line['line']}", markup=False, highlight=False, soft_wrap=True)


def _where(line: dict[str, Any]) -> str:
    attempt = line.get("attempt")
    return (line["step"] or "run") + (f"#{attempt}" if attempt and attempt > 1 else "")


# a step's state in runs list: marks for the common ones, the word for the rest (runs show has all)
_STEP_MARK: dict[str, str] = {S.SUCCEEDED: "✓", S.FAILED: "✗ failed", S.RUNNING: "▶", S.PENDING: "·"}

_RANK: dict[str, int] = {RunStatus.PENDING: 0, RunStatus.RUNNING: 1}


def follow_run(st: State, run_id: int, poll: float = 0.5) -> dict[str, Any]:
    """Print log lines as they come, with step transitions, until the run ends.

    States come in the order they happened: a step is shown ``running`` before its first
    line, and its final state before the first line of what follows it (the next step or
    the run's own closing lines); the run is read before its lines, so every line a step
    wrote is printed before the step's final state."""
    return _RunFollower(st, run_id).follow(poll)


class _RunFollower:
    """What :func:`follow_run` has shown of one run: the last log line, each step's state."""

    def __init__(self, st: State, run_id: int) -> None:
        self.st = st
        self.run_id = run_id
        self.console = output.err_console if st.json else output.console
        self.after = 0
        self.seen: dict[str, str] = {}
        self.current: str | None = None

    def follow(self, poll: float) -> dict[str, Any]:
        while True:
            run: dict[str, Any] = self.st.client.get(f"/runs/{self.run_id}")
            self._print_lines({step["name"] for step in run["steps"]})
            for step in run["steps"]:
                self._show(step["name"], step["status"])
            if run["status"] not in ACTIVE:
                self._finish(run)
                return run
            time.sleep(poll)

    def _lines(self) -> list[dict[str, Any]]:
        logs = self.st.client.get(f"/runs/{self.run_id}/logs", params={"after": self.after})
        lines: list[dict[str, Any]] = logs["lines"]
        return lines

    def _print_lines(self, steps: set[str]) -> None:
        """The lines written since the last call, each step shown running before its first."""
        for line in self._lines():
            self.after = line["id"]
            if line["step"] != self.current:
                if any(status == RunStatus.RUNNING for name, status in self.seen.items() if name != line["step"]):
                    self._close_open_steps(line["step"])
                self.current = line["step"]
                if self.current in steps:
                    self._show(self.current, RunStatus.RUNNING)
            _print_line(self.console, line)

    def _finish(self, run: dict[str, Any]) -> None:
        for line in self._lines():
            _print_line(self.console, line)  # anything the orchestrator wrote as the run ended
        self.console.print(
            f"run {self.run_id}: {_status(run['status'])}" + (f" — {run['error']}" if run.get("error") else "")
        )

    def _show(self, name: str, status: str) -> None:
        if _RANK.get(self.seen.get(name, RunStatus.PENDING), 2) < _RANK.get(status, 2):  # never backwards
            self.seen[name] = status
            self.console.print(f"  step {name}: {_status(status)}")

    def _close_open_steps(self, but: str | None) -> None:
        """Show the end of every step shown running, except ``but``, whose lines are coming."""
        for step in self.st.client.get(f"/runs/{self.run_id}")["steps"]:
            if (
                step["name"] != but
                and self.seen.get(step["name"]) == RunStatus.RUNNING
                and step["status"] not in ACTIVE
            ):
                self._show(step["name"], step["status"])


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline's runs.")] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help=f"Only runs in this state: {', '.join(s.value for s in RunStatus)}."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many runs, the newest.")] = 20,
    json: JsonOpt = False,
) -> None:
    """Recent runs, newest first."""
    st = state(ctx, json)
    params: dict[str, Any] = {"limit": limit}
    if pipeline:
        params["pipeline"] = pipeline
    if status:
        params["status"] = status
    runs = st.client.get("/runs", params=params)["runs"]
    if st.json:
        output.print_json(runs)
        return
    with_slot = any(r.get("slot") for r in runs)
    output.table(
        "Runs",
        ["id", "pipeline", "status", "started (UTC)", "s", *(["slot"] if with_slot else []), "steps"],
        (
            [
                r["id"],
                r["pipeline"],
                _status(r["status"]),
                output.timestamp(r["started_at"]),
                output.seconds(r["duration"]),
                *([r.get("slot")] if with_slot else []),
                "\n".join(
                    f"{s['name']} {_STEP_MARK.get(s['status'], s['status'])}" + (" suspect" if s.get("suspect") else "")
                    for s in r["steps"]
                ),
            ]
            for r in runs
        ),
        no_wrap=("id", "status", "started (UTC)", "s", "slot"),
        optional=("s", "slot"),
    )


@runs_app.command("show")
def runs_show(
    ctx: typer.Context, run_id: Annotated[int, typer.Argument(help="Run id.")], json: JsonOpt = False
) -> None:
    """One run: its steps, statuses, commits, digests and durations."""
    st = state(ctx, json)
    run = st.client.get(f"/runs/{run_id}")
    if st.json:
        output.print_json(run)
        return
    shown = {k: (_status(v) if k == "status" else v) for k, v in run.items() if k not in ("steps", "trigger_changes")}
    if run.get("trigger_changes"):  # a run a dataset's change triggered: dataset@commit of each
        shown["triggered by"] = ", ".join(run["trigger_changes"])
    output.fields(shown, title=f"run {run_id}")
    steps = run["steps"]
    output.table(
        "Steps",
        ["step", "tool", "status", "exit", "s", "error"],
        (
            [
                s["name"],
                s["tool"],
                _step_status(s) + (" [yellow]suspect[/]" if s.get("suspect") else ""),
                s["exit_code"],
                output.seconds(s["duration"]),
                s["error"],
            ]
            for s in steps
        ),
        no_wrap=("status", "exit", "s"),
        optional=("tool", "s"),
    )
    _placement_table(steps)
    _attempts_table(steps)
    suspect = [s for s in steps if s.get("suspect")]
    if suspect:
        output.table("Suspect steps", ["step", "why"], ([s["name"], s.get("suspect_detail")] for s in suspect))
    federation = any((s.get("details") or {}).get("federation") for s in steps)
    output.table(
        "Commits",
        ["step", "input", "output", "merge", "image digest", *(["federation"] if federation else [])],
        (
            [
                s["name"],
                _short(s["input_commit"]),
                _short(s["output_commit"]),
                _short(s["merge_commit"]),
                (s["image_digest"] or "").removeprefix("sha256:")[:12],
                *([(s.get("details") or {}).get("federation", "")] if federation else []),
            ]
            for s in steps
            if s["status"] != RunStatus.PENDING
        ),
        no_wrap=("input", "output", "merge", "image digest"),
    )


def _step_status(step: dict[str, Any]) -> str:
    """A step's status; ``queued`` for a running step its engine has not started yet."""
    if step["status"] == RunStatus.RUNNING and step.get("placement") == "queued":
        return "[dim]queued[/]"
    return _status(step["status"])


def _placement_table(steps: list[dict[str, Any]]) -> None:
    """Where each step that reached an engine runs or ran: the engine, its node and job."""
    placed = [s for s in steps if s.get("executor")]
    if not placed:
        return
    output.table(
        "Placement",
        ["step", "engine", "state", "node", "job"],
        (
            [
                s["name"],
                s["executor"],
                (s.get("placement") or "") if s["status"] == RunStatus.RUNNING else "ended",
                s.get("node") or "",
                s.get("job") or "",
            ]
            for s in placed
        ),
        no_wrap=("engine", "state"),
        optional=("job",),
    )


def _attempts_table(steps: list[dict[str, Any]]) -> None:
    """Each attempt of the steps whose container ran more than once (a retry policy's)."""
    retried = [s for s in steps if len(s.get("attempts") or []) > 1]
    if not retried:
        return
    output.table(
        "Attempts",
        ["step", "attempt", "status", "exit", "s", "then waited s", "error"],
        (
            [
                s["name"],
                a["number"],
                _status(a["status"]),
                a["exit_code"],
                output.seconds(a["duration"]),
                output.seconds(a["retry_delay"]) if a.get("retry_delay") is not None else "",
                a.get("error"),
            ]
            for s in retried
            for a in s["attempts"]
        ),
        no_wrap=("attempt", "status", "exit", "s"),
        optional=("then waited s", "error"),
    )


@runs_app.command("logs")
def runs_logs(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    step: Annotated[str | None, typer.Option("--step", help="Only this step's lines.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
    json: JsonOpt = False,
) -> None:
    """A run's log lines (every step's container output and the orchestrator's own)."""
    st = state(ctx, json)
    if follow and not st.json:
        follow_run(st, run_id)
        return
    params: dict[str, Any] = {"step": step} if step else {}
    logs = st.client.get(f"/runs/{run_id}/logs", params=params)
    if st.json:  # a listing: a JSON list, as everywhere in maoctl
        output.print_json(logs["lines"])
        return
    for line in logs["lines"]:
        print(f"{line['ts']} {_where(line)} | {line['line']}")


@runs_app.command("cancel")
def runs_cancel(
    ctx: typer.Context, run_id: Annotated[int, typer.Argument(help="Run id.")], json: JsonOpt = False
) -> None:
    """Cancel a running run: its container is killed."""
    st = state(ctx, json)
    result = st.client.post(f"/runs/{run_id}/cancel")
    output.print_json(result) if st.json else output.ok(f"run {run_id} cancelling")
