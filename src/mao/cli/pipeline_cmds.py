"""``maoctl pipeline``, ``maoctl repo`` and the scheduling commands under ``maoctl tool``."""

from __future__ import annotations

import json as jsonlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
import yaml
from rich.markup import escape

from mao.cli import output
from mao.cli.client import APIError, pipeline_list
from mao.cli.registry_cmds import tool_app
from mao.cli.runs_cmds import follow_run
from mao.cli.state import JsonOpt, state
from mao.errors import InvalidInput
from mao.models import ENV_NAME_RE, MAX_CMD, MAX_DESCRIPTION, MAX_ENV_VALUE
from mao.slots import normalize_slot
from mao.status import RunStatus
from mao.validation import check_name

if TYPE_CHECKING:
    from mao.cli.client import Client

pipeline_app = typer.Typer(help="Define, run and schedule pipelines.", no_args_is_help=True)
repo_app = typer.Typer(help="Local-only datasets: bare git repositories on this instance.", no_args_is_help=True)

NameReq = Annotated[str, typer.Option("--name", help="Pipeline name.")]


def load_definition(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = jsonlib.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise InvalidInput(f"{path} is not valid {kind}: {_one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold one pipeline object with name, description and steps")
    return data


def _one_line(exc: Exception) -> str:
    """A parser's error on one line: what is wrong and where (YAML's own is several lines)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.YAMLError) and problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def _parse_env(text: str) -> dict[str, str]:
    env = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise typer.BadParameter(f"{part!r} is not KEY=VALUE")
        key, value = part.split("=", 1)
        key, value = key.strip(), value.strip()
        if not ENV_NAME_RE.fullmatch(key):
            raise typer.BadParameter(
                f"{key!r} is not a variable name: letters, digits and _, not starting with a digit"
            )
        if key in env:
            raise typer.BadParameter(f"{key} is given twice")
        if len(value) > MAX_ENV_VALUE:
            raise typer.BadParameter(f"the value of {key} is longer than {MAX_ENV_VALUE} characters")
        env[key] = value
    return env


def _answer(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """A prompt's check: a refused answer is asked again, with the reason (``InvalidInput``
    and ``BadParameter`` alike); any other error (the orchestrator unreachable) ends the prompts."""

    def proc(value: str) -> Any:
        try:
            return check(value.strip())
        except InvalidInput as exc:
            raise typer.BadParameter(exc.message) from None

    return proc


class _Asker:
    """Checks each answer of ``pipeline add`` as it is given, against the orchestrator's registry."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.step_names: list[str] = []

    def _exists(self, path: str) -> bool:
        try:
            self.client.get(path)
        except APIError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    def _known(self, path: str) -> str:
        names = sorted(self.client.get(path))
        return ", ".join(names) if names else "none yet"

    def pipeline_name(self, value: str) -> str:
        check_name(value, "pipeline name")
        if self._exists(f"/pipeline/{value}"):
            raise typer.BadParameter(
                f"this instance has a pipeline {value} already: choose another name "
                f"(maoctl pipeline remove --name {value} removes the old one)"
            )
        return value

    def description(self, value: str) -> str:
        if len(value) > MAX_DESCRIPTION:
            raise typer.BadParameter(f"at most {MAX_DESCRIPTION} characters, got {len(value)}")
        return value

    def step_name(self, value: str) -> str:
        check_name(value, "step name")
        if value in self.step_names:
            raise typer.BadParameter(f"this pipeline has a step {value} already: step names are distinct")
        return value

    def tool(self, value: str) -> str:
        check_name(value, "tool name")
        if not self._exists(f"/registry/tools/{value}"):
            raise typer.BadParameter(
                f"no tool {value} in the registry; registered: {self._known('/registry/tools')} "
                "(maoctl tool add registers one)"
            )
        return value

    def dataset(self, value: str) -> str:
        check_name(value, "dataset name")
        if not self._exists(f"/registry/datasets/{value}"):
            raise typer.BadParameter(
                f"no dataset {value} in the registry; registered: {self._known('/registry/datasets')} "
                "(maoctl dataset add or maoctl repo add --register makes one)"
            )
        return value

    def input_dataset(self, value: str) -> str:
        return self.dataset(value) if value else ""

    def cmd(self, value: str) -> str:
        if len(value) > MAX_CMD:
            raise typer.BadParameter(f"at most {MAX_CMD} characters, got {len(value)}")
        return value


def prompt_definition(client: Client) -> dict[str, Any]:
    """Ask for a pipeline step by step, as the original client did; each answer is checked
    as it is given (names, the tool and datasets in the registry, the environment), and a
    refused one is asked again with the reason."""
    ask = _Asker(client)
    name = typer.prompt("Pipeline name", value_proc=_answer(ask.pipeline_name))
    description = typer.prompt("Description", default="", show_default=False, value_proc=_answer(ask.description))
    steps: list[dict[str, Any]] = []
    while True:
        typer.echo(f"Step {len(steps) + 1}")
        step: dict[str, Any] = {
            "name": typer.prompt("  Step name", value_proc=_answer(ask.step_name)),
            "tool": typer.prompt("  Tool", value_proc=_answer(ask.tool)),
        }
        ask.step_names.append(step["name"])
        input_dataset = typer.prompt(
            "  Input dataset (empty for none)", default="", show_default=False, value_proc=_answer(ask.input_dataset)
        )
        if input_dataset:
            step["input_dataset"] = input_dataset
        step["output_dataset"] = typer.prompt("  Output dataset", value_proc=_answer(ask.dataset))
        cmd = typer.prompt(
            "  Command (empty for the image's default)", default="", show_default=False, value_proc=_answer(ask.cmd)
        )
        if cmd:
            step["cmd"] = cmd
        env = typer.prompt(
            "  Environment, KEY=VALUE separated by commas ({{ NAME }} for a private variable)",
            default="",
            show_default=False,
            value_proc=_answer(_parse_env),
        )
        if env:
            step["env"] = env
        step["docker_socket"] = typer.confirm("  Mount the Docker socket?", default=False)
        steps.append(step)
        if not typer.confirm("Add another step?", default=False):
            break
    return {"name": name, "description": description, "steps": steps}


def _prompt_or_explain(client: Client) -> dict[str, Any]:
    """The prompts; their input ending early without a terminal is an error naming ``--file``."""
    try:
        return prompt_definition(client)
    except (click.exceptions.Abort, typer.Abort) as exc:
        if sys.stdin.isatty():
            raise
        typer.echo()  # end the unanswered prompt's line
        raise InvalidInput(
            "the input ended before the pipeline was complete and there is no terminal to ask: "
            "give the pipeline as a file with --file pipeline.yaml (nothing was defined)"
        ) from exc


@pipeline_app.command("add")
def pipeline_add(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="pipeline.yaml or .json: no prompts.")] = None,
    json: JsonOpt = False,
) -> None:
    """Define a pipeline on this instance and register it in the federation."""
    st = state(ctx, json)
    definition = load_definition(file) if file else _prompt_or_explain(st.client)
    placeholders = sorted(
        {
            v.strip()[2:-2].strip()
            for s in definition.get("steps", [])
            if isinstance(s, dict)
            for v in (s.get("env") or {}).values()
            if isinstance(v, str) and v.strip().startswith("{{")
        }
    )
    given = definition.setdefault("private_variables", {})
    for name in placeholders:
        if name not in given and not file:
            given[name] = typer.prompt(
                f"Value of private variable {name} (kept on this instance only)", hide_input=True
            )
    result = st.client.post("/pipeline/init", json=definition)
    if st.json:
        output.print_json(result)
    else:
        output.ok(f"pipeline {result['pipeline']['name']} defined with {len(result['pipeline']['steps'])} step(s)")
    unset = [name for name in placeholders if name not in given]
    if unset:  # runs fail until they are set: say so now, not at the first run
        pipeline = result["pipeline"]["name"]
        output.err_console.print(
            f"[yellow]Warning:[/yellow] pipeline {escape(pipeline)} cannot run until its private "
            f"variable(s) {escape(', '.join(unset))} are set: "
            + "; ".join(
                f"maoctl pipeline set-variable --name {escape(pipeline)} --variable {escape(n)}" for n in unset
            ),
            highlight=False,
        )


@pipeline_app.command("list")
@pipeline_app.command("get", help="The same as list (the first MAO's verb).")
def pipeline_get(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="Show only this pipeline, with its steps.")] = None,
    json: JsonOpt = False,
) -> None:
    """List this instance's pipelines, or show one with --name."""
    st = state(ctx, json)
    if name:
        data = st.client.get(f"/pipeline/{name}")
        if st.json:
            output.print_json(data)
            return
        output.fields({k: v for k, v in data.items() if k != "steps"}, title=f"pipeline {name}")
        output.table(
            "Steps",
            ["step", "tool", "input", "output", "cmd"],
            (
                [
                    s["name"],
                    s["tool"],
                    s.get("input_dataset"),
                    s["output_dataset"],
                    " ".join(s["cmd"]) if isinstance(s.get("cmd"), list) else s.get("cmd"),
                ]
                for s in data["steps"]
            ),
        )
        env = [(s["name"], k, v) for s in data["steps"] for k, v in (s.get("env") or {}).items()]
        if env:
            output.table("Environment", ["step", "variable", "value"], env)
        return
    pipelines = pipeline_list(st.client.get("/pipeline"))
    if st.json:
        output.print_json(pipelines)
        return
    output.table(
        "Pipelines",
        ["name", "steps", "schedule", "next run (UTC)", "description"],
        (
            [
                p["name"],
                " → ".join(s["name"] for s in p["steps"]),
                (p["schedule"] or {}).get("cron"),
                output.timestamp((p["schedule"] or {}).get("next_run_time")),
                p["description"],
            ]
            for p in pipelines
        ),
        no_wrap=("schedule", "next run (UTC)"),
        ellipsis=("description",),
        optional=("description",),
    )


@pipeline_app.command("remove")
def pipeline_remove(
    ctx: typer.Context,
    name: NameReq,
    unregister: Annotated[
        bool, typer.Option("--unregister", help="Also remove it from the federation registry.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Remove a pipeline (and its schedule) from this instance."""
    st = state(ctx, json)
    result = st.client.delete(f"/pipeline/{name}", params={"unregister": unregister})
    output.print_json(result) if st.json else output.ok(f"pipeline {name} removed")


@pipeline_app.command("run")
def pipeline_run(
    ctx: typer.Context,
    name: NameReq,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Schedule with this crontab line instead of running now.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run live; exit non-zero if it fails.")] = False,
    slot: Annotated[
        str | None,
        typer.Option(
            "--slot",
            help="Run now for this cron fire time (ISO-8601 UTC, e.g. 2026-11-28T12:00:00Z): backfill, re-run.",
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="With --cron: every (default; each instance runs each slot) or one (one delivered run per "
            "slot in the federation; the instances claim slots and take over a failed or dead claimer's).",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Run a pipeline now (for --slot T if given), or schedule it with --cron."""
    st = state(ctx, json)
    if cron and slot:
        raise InvalidInput("give either --cron (schedule) or --slot (run now for that fire time), not both")
    if mode is not None and mode not in ("every", "one"):
        raise InvalidInput(f"invalid --mode {mode!r}: give every or one")
    if mode is not None and not cron:
        raise InvalidInput("--mode goes with --cron: it says how the federation covers the schedule's slots")
    if slot is not None:
        slot = normalize_slot(slot)
    body: dict[str, Any] = {"name": name}
    if cron:
        body["cron"] = cron
    if mode:
        body["mode"] = mode
    if slot:
        body["slot"] = slot
    result = st.client.post("/pipeline/run", json=body)
    if cron:
        output.print_json(result) if st.json else output.ok(
            f"pipeline {name} scheduled '{cron}' ({result['job']['timezone']}, mode "
            f"{result['job'].get('mode', 'every')}); next run {output.utc(result['job']['next_run_time'])}"
        )
        return
    run_id = result["run_id"]
    if not wait:
        where = f" for slot {slot}" if slot else ""
        output.print_json(result) if st.json else output.ok(
            f"run {run_id} of {name}{where} started; `maoctl runs show {run_id}`"
        )
        return
    final = follow_run(st, run_id)
    if st.json:
        output.print_json(final)
    if final["status"] != RunStatus.SUCCEEDED:
        raise typer.Exit(1)


@pipeline_app.command("schedule")
def pipeline_schedule(
    ctx: typer.Context,
    name: NameReq,
    cron: Annotated[str, typer.Option("--cron", help="Crontab line, e.g. '0 12 * * *'.")],
    json: JsonOpt = False,
) -> None:
    """Run a pipeline on a cron schedule (replaces an earlier schedule)."""
    st = state(ctx, json)
    result = st.client.post("/pipeline/run", json={"name": name, "cron": cron})
    output.print_json(result) if st.json else output.ok(
        f"pipeline {name} scheduled '{cron}'; next run {output.utc(result['job']['next_run_time'])}"
    )


@pipeline_app.command("unschedule")
def pipeline_unschedule(ctx: typer.Context, name: NameReq, json: JsonOpt = False) -> None:
    """Stop a pipeline's schedule (its runs so far are kept)."""
    st = state(ctx, json)
    result = st.client.delete(f"/jobs/{name}")
    output.print_json(result) if st.json else output.ok(f"pipeline {name} unscheduled")


@pipeline_app.command("triggers")
def pipeline_triggers(ctx: typer.Context, name: NameReq, json: JsonOpt = False) -> None:
    """A pipeline's trigger: the datasets it watches, the ground-truth commit last seen on each
    and the one the last triggered run was for."""
    st = state(ctx, json)
    found = st.client.get(f"/pipeline/{name}/triggers")
    if st.json:
        output.print_json(found)
        return
    trigger = found.get("trigger")
    if not trigger:
        output.ok(f"pipeline {name} has no trigger")
        return
    output.fields(
        {
            "datasets": ", ".join(trigger["datasets"]),
            "mode": trigger["mode"],
            "debounce": f"{trigger['debounce']:g}s",
            "federation": trigger["federation"],
        },
        title=f"trigger of {name}",
    )
    output.table(
        "Watched datasets",
        ["dataset", "seen", "seen at", "ran for", "run", "pending"],
        (
            [
                h["dataset"],
                (h["seen_commit"] or "")[:10],
                h["seen_at"],
                (h["fired_commit"] or "")[:10],
                h["last_run_id"],
                "yes" if h["pending"] else "",
            ]
            for h in found["datasets"]
        ),
        no_wrap=("seen", "ran for", "run"),
    )


@pipeline_app.command("set-variable")
def pipeline_set_variable(
    ctx: typer.Context,
    name: NameReq,
    variable: Annotated[str, typer.Option("--variable", help="Name used as {{ NAME }} in a step's env.")],
    value: Annotated[str | None, typer.Option("--value", help="Prompted (hidden) if omitted.")] = None,
    json: JsonOpt = False,
) -> None:
    """Set a private variable, kept in this instance's store only."""
    st = state(ctx, json)
    if value is None:
        value = typer.prompt(f"Value of {variable}", hide_input=True)
    result = st.client.request("PUT", f"/pipeline/{name}/variables", json={"name": variable, "value": value})
    output.print_json(result) if st.json else output.ok(f"private variable {variable} of {name} set")


@pipeline_app.command("list-scheduled")
@tool_app.command("list-scheduled", help="The same as maoctl pipeline list-scheduled (the first MAO's place).")
def pipeline_list_scheduled(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List scheduled pipelines and their fires since they were scheduled, restarts included (skipped: the previous run was still going)."""
    st = state(ctx, json)
    jobs = st.client.get("/jobs")["jobs"]
    if st.json:
        output.print_json(jobs)
        return
    same = all(j["id"] == j["pipeline"] for j in jobs)  # the job id is the pipeline's name: shown once
    output.table(
        "Scheduled pipelines",
        [*([] if same else ["id"]), "pipeline", "cron", "timezone", "next run (UTC)", "fired", "skipped"],
        (
            [
                *([] if same else [j["id"]]),
                j["pipeline"],
                j["cron"],
                j["timezone"],
                output.timestamp(j["next_run_time"]),
                str(j.get("started", 0) + j.get("queued", 0)),
                str(j.get("skipped", 0)),
            ]
            for j in jobs
        ),
        no_wrap=("cron", "next run (UTC)", "fired", "skipped"),
        optional=("timezone",),
    )
    for job in jobs:
        if job.get("last_skip"):
            output.console.print(f"{job['id']}: last skipped {job['last_skip']}", markup=False, highlight=False)


@tool_app.command("stop")
def tool_stop(
    ctx: typer.Context,
    id: Annotated[str, typer.Option("--id", help="Job id from list-scheduled: the pipeline's name.")],
    json: JsonOpt = False,
) -> None:
    """Stop a scheduled job: the same as maoctl pipeline unschedule --name (the first MAO's place)."""
    st = state(ctx, json)
    result = st.client.delete(f"/jobs/{id}")
    output.print_json(result) if st.json else output.ok(f"job {id} stopped")


@repo_app.command("add")
def repo_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Repository (and dataset) name: letters, digits, - and _.")],
    register: Annotated[bool, typer.Option("--register", help="Also register it as a dataset.")] = False,
    json: JsonOpt = False,
) -> None:
    """Create a bare repository in the instance's data directory and print its path."""
    st = state(ctx, json)
    result = st.client.post("/bare-repo/init", json={"name": name, "register": register})
    if st.json:
        output.print_json(result)
    else:
        output.ok(f"bare repository {name} created" + (" and registered" if register else ""))
        print(result["path"])


@pipeline_app.command("metrics")
def pipeline_metrics(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    step: Annotated[str | None, typer.Option("--step", help="Only this step.")] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="Only this metric.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="The last this many values.")] = 1000,
    json: JsonOpt = False,
) -> None:
    """The control metrics a pipeline's steps reported (mao-metrics.json), oldest first."""
    st = state(ctx, json)
    check_name(name, "pipeline name")
    params: dict[str, Any] = {"limit": limit}
    if step:
        params["step"] = check_name(step, "step name")
    if metric:
        params["metric"] = check_name(metric, "metric name")
    series = st.client.get(f"/pipelines/{name}/metrics", params=params)
    if st.json:
        output.print_json(series)
        return
    output.table(
        f"Metrics of {name}",
        ["run", "step", "metric", "value", "slot or time (UTC)", "suspect"],
        (
            [
                p["run_id"],
                p["step"],
                p["metric"],
                f"{p['value']:g}",
                p["slot"] or output.timestamp(p["recorded_at"]),
                "suspect" if p["suspect"] else "",
            ]
            for p in series
        ),
        no_wrap=("run", "value", "slot or time (UTC)", "suspect"),
    )
