"""``maoctl instance init``: choose pipelines from the federation registry and the marketplace,
register what they are missing, define them on this instance and schedule them.

Re-runnable: pipelines already on this instance are reported and left alone. Every
question has a flag (``--pipeline``, ``--var``, ``--yes``, ``--cron``), so the same
command runs unattended; without a terminal, or with ``--non-interactive``, anything
that would need a question is an error for that pipeline, and nothing is written for it.

All changes go through the orchestrator's API; the marketplace is only read.
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape

from mao.cli import output
from mao.cli.client import APIError, Client, pipeline_list
from mao.cli.marketplace_cmds import MarketplaceUrlOpt, marketplace_url
from mao.cli.state import JsonOpt, state
from mao.errors import InvalidInput, MAOError
from mao.marketplace import Marketplace, ToolEntry
from mao.models import ENV_NAME_RE, PipelineIn
from mao.validation import NAME_RE

HEADER = (
    "Available MAO Pipelines ('✓'/'✗' indicate if the pipeline is already registered with this instance or federation):"
)
YES, NO = "✓", "✗"

ADDED, PRESENT, SKIPPED, FAILED = "added", "already on this instance", "skipped", "failed"


@dataclass
class Offer:
    """A pipeline the user may choose, and where its definition comes from."""

    name: str
    definition: dict[str, Any]
    source: str  # federation | marketplace | instance
    on_instance: bool
    in_federation: bool
    schedule: str | None = None


@dataclass
class Outcome:
    pipeline: str
    status: str
    source: str
    registered_tools: list[str] = field(default_factory=list)
    created_datasets: list[str] = field(default_factory=list)
    private_variables: list[str] = field(default_factory=list)
    schedule: str | None = None
    next_run_time: str | None = None
    message: str = ""


@dataclass
class Plan:
    """Everything decided for one pipeline before anything is written."""

    offer: Offer
    pipeline: PipelineIn
    values: dict[str, str]
    tools: list[ToolEntry]
    datasets: list[str]
    cron: str | None


@dataclass(frozen=True)
class Answers:
    """The answers given as flags: asked nothing else unless ``interactive``."""

    interactive: bool
    yes: bool
    json: bool
    variables: dict[str, str]
    crons: dict[str, str]
    cron_all: str | None


class _Unmet(Exception):
    """A requirement of one pipeline that is not met: what ``init`` reports for it."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


class Session:
    """One run of ``init``: the API client, the marketplace, the answers given as flags."""

    def __init__(self, client: Client, market: Marketplace | None, answers: Answers) -> None:
        self.client = client
        self.market = market
        self.market_error: str | None = None
        self.answers = answers
        self.interactive = answers.interactive
        self.yes = answers.yes
        self.json = answers.json
        self.used_variables: set[str] = set()
        self.known_tools: set[str] = set()
        self.known_datasets: set[str] = set()

    # ------------------------------------------------------------------ talking

    def say(self, message: str = "") -> None:
        typer.echo(message, err=self.json)

    def warn(self, message: str) -> None:
        typer.echo(f"Warning: {message}", err=True)

    def ask(self, text: str, **kwargs: Any) -> str:
        answer: str = typer.prompt(text, err=self.json, **kwargs)
        return answer

    def confirm(self, text: str, default: bool = True) -> bool:
        return typer.confirm(text, default=default, err=self.json)

    # ------------------------------------------------------------------ offers

    def offers(self) -> list[Offer]:
        federation: dict[str, dict[str, Any]] = self.client.get("/registry/pipelines")
        local = {p["name"]: p for p in pipeline_list(self.client.get("/pipeline"))}
        self.known_tools = set(self.client.get("/registry/tools"))
        registered = self.client.get("/registry/datasets")
        self.known_datasets = set(registered)
        self.dataset_policies = {n: v.get("policy", "merge") for n, v in registered.items() if isinstance(v, dict)}
        market_pipelines = []
        if self.market is not None:
            try:
                market_pipelines = self.market.pipelines()
            except MAOError as exc:
                self.market_error = exc.message
                self.warn(f"{exc.message}; showing the federation's pipelines only")

        def schedule(name: str) -> str | None:
            return ((local.get(name) or {}).get("schedule") or {}).get("cron")

        offers = [
            Offer(name, definition, "federation", name in local, True, schedule(name))
            for name, definition in sorted(federation.items())
        ]
        offers += [
            Offer(p.name, p.definition(), "marketplace", p.name in local, False, schedule(p.name))
            for p in market_pipelines
            if p.name and p.name not in federation
        ]
        seen = {o.name for o in offers}
        offers += [
            Offer(
                name,
                {"name": name, "description": row.get("description", ""), "steps": row.get("steps", [])},
                "instance",
                True,
                False,
                schedule(name),
            )
            for name, row in sorted(local.items())
            if name not in seen
        ]
        return offers

    def show(self, offers: list[Offer]) -> None:
        self.say(HEADER)
        self.say()
        for index, offer in enumerate(offers):
            here = YES if offer.on_instance else NO
            there = YES if offer.in_federation else NO
            self.say(f"[{index}] {offer.name} | registered on: this instance {here}, this federation {there}")
            self.say(f"        Description: '{one_line(offer.definition.get('description'))}'")
        self.say()

    def select(self, offers: list[Offer]) -> list[Offer]:
        while True:
            answer = self.ask(
                "Select pipelines to set up (numbers separated by commas or spaces, e.g. 0,2; empty for none)",
                default="",
                show_default=False,
            )
            try:
                return parse_selection(answer, offers)
            except InvalidInput as exc:
                self.say(f"Error: {exc.message}")

    # ------------------------------------------------------------------ one pipeline

    def _problem(self, offer: Offer, message: str, status: str | None = None) -> _Unmet:
        """A requirement that is not met: skipped when asking, failed when unattended."""
        status = status or (SKIPPED if self.interactive else FAILED)
        self.say(f"  {NO} {'skipped' if status == SKIPPED else 'cannot set up'} pipeline {offer.name}: {message}")
        return _Unmet(Outcome(offer.name, status, offer.source, message=message))

    def plan(self, offer: Offer) -> Plan | Outcome:
        self.say(
            f"Pipeline {offer.name} ({'from the federation registry' if offer.in_federation else 'from the marketplace'})"
        )
        try:
            try:
                pipeline = PipelineIn.model_validate(offer.definition)
            except ValidationError as exc:
                raise self._problem(
                    offer, f"its definition is invalid: {exc.errors()[0].get('msg', 'invalid')}"
                ) from exc
            values = self._variables(offer, pipeline)
            tools = self._missing_tools(offer, pipeline)
            datasets = self._missing_datasets(offer, pipeline)
            cron = self._cron(offer)
        except _Unmet as unmet:
            return unmet.outcome
        return Plan(offer, pipeline, values, tools, datasets, cron)

    def _variables(self, offer: Offer, pipeline: PipelineIn) -> dict[str, str]:
        """The values of the pipeline's private variables: given as flags, else asked."""
        values: dict[str, str] = {}
        for var in pipeline.placeholders():
            if var in self.answers.variables:
                values[var] = self.answers.variables[var]
                self.used_variables.add(var)
            elif self.interactive:
                values[var] = self.ask(
                    f"  Value of private variable {var} (kept on this instance only)", hide_input=True
                )
            else:
                raise self._problem(offer, f"it needs the private variable {var}: pass --var {var}=VALUE")
        return values

    def _missing_tools(self, offer: Offer, pipeline: PipelineIn) -> list[ToolEntry]:
        """The marketplace's entries of the tools the federation lacks, each agreed to be registered."""
        tools: list[ToolEntry] = []
        for name in dict.fromkeys(step.tool for step in pipeline.steps):
            if name in self.known_tools:
                continue
            entry = self._market_tool(name)
            if entry is None:
                where = f" (the marketplace could not be read: {self.market_error})" if self.market_error else ""
                raise self._problem(
                    offer,
                    f"tool {name} is neither registered in the federation nor offered by the marketplace{where}; "
                    "ask the federation operator, or register it with `maoctl tool add`",
                )
            if self.yes:
                pass
            elif not self.interactive:
                raise self._problem(
                    offer,
                    f"tool {name} is not registered; pass --yes to register it from the marketplace (image {entry.image})",
                )
            elif not self.confirm(
                f"  Tool {name} is not registered in the federation. Register it from the marketplace (image {entry.image})?"
            ):
                raise self._problem(offer, f"tool {name} is not registered", SKIPPED)
            tools.append(entry)
        return tools

    def _missing_datasets(self, offer: Offer, pipeline: PipelineIn) -> list[str]:
        """The datasets the federation lacks, each agreed to be created as a local-only one."""
        datasets: list[str] = []
        for name in dict.fromkeys(d for step in pipeline.steps for d in (step.input_dataset, step.output_dataset) if d):
            if name in self.known_datasets:
                policy = getattr(self, "dataset_policies", {}).get(name, "merge")
                self.say(
                    f"  dataset {name}: ground-truth agreed by {'majority vote per slot' if policy == 'vote' else 'merging every node'} (policy {policy})"
                )
                continue
            hint = (
                f"dataset {name} is not registered; to share it with the federation, contact the federation "
                "operator to have it set up and registered, then run `maoctl instance init` again"
            )
            if self.yes:
                pass
            elif not self.interactive:
                raise self._problem(offer, hint + " (or pass --yes to create it as a local-only dataset)")
            elif not self.confirm(
                f"  Dataset {name} is not registered in the federation. Create it as a local-only dataset "
                "(a bare git repository on this instance, not shared with the federation)?"
            ):
                raise self._problem(offer, hint, SKIPPED)
            datasets.append(name)
        return datasets

    def _cron(self, offer: Offer) -> str | None:
        """The pipeline's schedule given as a flag, checked."""
        cron = self.answers.crons.get(offer.name) or self.answers.cron_all
        if cron:
            from mao.cron import parse_cron

            try:
                parse_cron(cron)
            except InvalidInput as exc:
                raise self._problem(offer, exc.message, FAILED) from exc
        return cron

    def _market_tool(self, name: str) -> ToolEntry | None:
        if self.market is None:
            return None
        try:
            return self.market.tool(name)
        except MAOError as exc:
            self.market_error = exc.message
            return None

    def apply(self, plan: Plan) -> Outcome:
        offer = plan.offer
        outcome = Outcome(offer.name, ADDED, offer.source, private_variables=sorted(plan.values))
        try:
            for tool in plan.tools:
                try:
                    self.client.post("/registry/tools", json=tool.model_dump())
                    outcome.registered_tools.append(tool.name)
                    self.say(f"  {YES} tool {tool.name} registered ({tool.image})")
                except APIError as exc:
                    if exc.status_code != 409:
                        raise
                    self.say(f"  {YES} tool {tool.name} is registered already")
                self.known_tools.add(tool.name)
            for name in plan.datasets:
                result = self.client.post("/bare-repo/init", json={"name": name, "register": True})
                outcome.created_datasets.append(name)
                self.known_datasets.add(name)
                self.say(
                    f"  {YES} dataset {name} created as a local-only repository ({result.get('path')}) and registered"
                )
            self.client.post("/pipeline/init", json={**plan.pipeline.definition(), "private_variables": plan.values})
            self.say(f"  {YES} pipeline {offer.name} defined on this instance")
        except APIError as exc:
            outcome.status = FAILED
            outcome.message = exc.message
            self.say(f"  {NO} pipeline {offer.name}: {exc.message}")
            return outcome
        self._schedule(plan, outcome)
        return outcome

    def _schedule(self, plan: Plan, outcome: Outcome) -> None:
        name = plan.offer.name
        if plan.cron:
            try:
                self._post_schedule(name, plan.cron, outcome)
            except APIError as exc:
                outcome.message = f"not scheduled: {exc.message}"
                self.say(f"  {NO} pipeline {name} not scheduled: {exc.message}")
            return
        if not self.interactive:
            return
        while True:
            cron = self.ask(
                f"  Cron rule for {name} (e.g. '0 3 * * *' for every day at 03:00; empty for no schedule)",
                default="",
                show_default=False,
            ).strip()
            if not cron:
                return
            try:
                self._post_schedule(name, cron, outcome)
                return
            except APIError as exc:
                if exc.status_code != 400:
                    outcome.message = f"not scheduled: {exc.message}"
                    self.say(f"  {NO} pipeline {name} not scheduled: {exc.message}")
                    return
                self.say(f"  Error: {exc.message}")

    def _post_schedule(self, name: str, cron: str, outcome: Outcome) -> None:
        job = self.client.post("/pipeline/run", json={"name": name, "cron": cron})["job"]
        outcome.schedule = cron
        outcome.next_run_time = job.get("next_run_time")
        self.say(
            f"  {YES} pipeline {name} scheduled '{cron}' ({job.get('timezone')}); next run {job.get('next_run_time')}"
        )

    def setup(self, offer: Offer) -> Outcome:
        if offer.on_instance:
            message = (
                f"already on this instance; `maoctl pipeline schedule --name {offer.name} --cron ...` "
                "changes its schedule"
            )
            self.say(f"Pipeline {offer.name} is already on this instance; skipped.")
            return Outcome(offer.name, PRESENT, offer.source, schedule=offer.schedule, message=message)
        plan = self.plan(offer)
        return plan if isinstance(plan, Outcome) else self.apply(plan)


# ---------------------------------------------------------------------- parsing


def one_line(text: Any) -> str:
    """Catalogue text for a terminal: one line, no control characters."""
    if not isinstance(text, str):
        return ""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def parse_selection(answer: str, offers: list[Offer]) -> list[Offer]:
    """``"0,2"``, ``"0 2"`` or names; an empty answer selects nothing."""
    chosen: list[Offer] = []
    by_name = {o.name: o for o in offers}
    for token in filter(None, re.split(r"[,\s]+", answer.strip())):
        if token.isdigit():
            index = int(token)
            if index >= len(offers):
                raise InvalidInput(f"{token} is not in the list; choose numbers from 0 to {len(offers) - 1}")
            offer = offers[index]
        elif token in by_name:
            offer = by_name[token]
        else:
            raise InvalidInput(f"{token!r} is not a number from the list (0 to {len(offers) - 1})")
        if offer not in chosen:
            chosen.append(offer)
    return chosen


def parse_vars(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not ENV_NAME_RE.fullmatch(name):
            raise typer.BadParameter(f"{item.split('=', 1)[0]!r}...: expected NAME=VALUE", param_hint="--var")
        out[name] = value
    return out


def parse_crons(values: list[str]) -> tuple[dict[str, str], str | None]:
    """``NAME=EXPR`` for one pipeline, or a bare ``EXPR`` for every selected pipeline."""
    per_pipeline: dict[str, str] = {}
    for_all: str | None = None
    for item in values:
        name, sep, expr = item.partition("=")
        if sep:
            if not NAME_RE.fullmatch(name.strip()):
                raise typer.BadParameter(f"{item!r}: expected PIPELINE=CRON or CRON", param_hint="--cron")
            per_pipeline[name.strip()] = expr.strip()
        else:
            if for_all is not None:
                raise typer.BadParameter(
                    "give one CRON for all pipelines, or PIPELINE=CRON for each", param_hint="--cron"
                )
            for_all = item.strip()
    return per_pipeline, for_all


# ---------------------------------------------------------------------- command


def init(
    ctx: typer.Context,
    pipelines: Annotated[
        list[str] | None,
        typer.Option(
            "--pipeline",
            "-p",
            help="Pipeline to set up (repeatable); skips the selection question.",
            show_default=False,
        ),
    ] = None,
    cron: Annotated[
        list[str] | None,
        typer.Option(
            "--cron",
            help="Schedule: PIPELINE=CRON (repeatable) or one CRON for all selected pipelines.",
            show_default=False,
        ),
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var", help="Private variable NAME=VALUE for {{ NAME }} placeholders (repeatable).", show_default=False
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Register missing tools from the marketplace and create missing datasets as local-only ones.",
        ),
    ] = False,
    interactive: Annotated[
        bool | None,
        typer.Option(
            "--interactive/--non-interactive",
            help="Ask questions (default: only when stdin is a terminal). Unattended, anything missing is an error.",
            show_default=False,
        ),
    ] = None,
    url: MarketplaceUrlOpt = None,
    json: JsonOpt = False,
) -> None:
    """Choose pipelines from the federation and the marketplace and set them up on this instance."""
    st = state(ctx, json)
    crons, cron_all = parse_crons(cron or [])
    answers = Answers(
        interactive=sys.stdin.isatty() if interactive is None else interactive,
        yes=yes,
        json=st.json,
        variables=parse_vars(var or []),
        crons=crons,
        cron_all=cron_all,
    )
    market: Marketplace | None = None
    market_error: str | None = None
    try:
        market = Marketplace(marketplace_url(st, url))
    except MAOError as exc:
        market_error = exc.message
    session = Session(st.client, market, answers)
    if market_error:
        session.market_error = market_error
        session.warn(f"{market_error}; showing the federation's pipelines only")
    try:
        selected = _selected(session, session.offers(), pipelines or [])
        for name in sorted(set(crons) - {o.name for o in selected}):
            session.warn(f"--cron {name}=... ignored: pipeline {name} is not selected")
        outcomes = []
        for index, offer in enumerate(selected):
            if index:
                session.say()
            outcomes.append(session.setup(offer))
    finally:
        if market is not None:
            market.close()

    _warn_unused_variables(session, outcomes)
    _summary(session, outcomes, market.url if market else None)
    if any(o.status == FAILED for o in outcomes):
        raise typer.Exit(1)


def _selected(session: Session, offers: list[Offer], pipelines: list[str]) -> list[Offer]:
    """The offers named by ``--pipeline``, else chosen in answer to a question."""
    if not offers:
        session.say("No pipelines are offered by the federation or the marketplace.")
        return []
    session.show(offers)
    if pipelines:
        by_name = {o.name: o for o in offers}
        unknown = [p for p in pipelines if p not in by_name]
        if unknown:
            raise typer.BadParameter(
                f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not offered by the federation "
                f"or the marketplace; choose from {', '.join(by_name)}",
                param_hint="--pipeline",
            )
        return [by_name[p] for p in dict.fromkeys(pipelines)]
    if session.interactive:
        return session.select(offers)
    raise typer.BadParameter(
        "no pipeline selected: pass --pipeline NAME (repeatable), or run in a terminal to choose",
        param_hint="--pipeline",
    )


def _warn_unused_variables(session: Session, outcomes: list[Outcome]) -> None:
    """A ``--var`` no pipeline used, once every pipeline attempted was set up (so none stopped before using it)."""
    attempted = [o for o in outcomes if o.status != PRESENT]
    if not attempted or not all(o.status == ADDED for o in attempted):
        return
    for name in sorted(set(session.answers.variables) - session.used_variables):
        session.warn(f"--var {name}=... was not used: no selected pipeline has a {{{{ {name} }}}} placeholder")


def _summary(session: Session, outcomes: list[Outcome], market_url: str | None) -> None:
    if session.json:
        output.print_json(
            {
                "ok": not any(o.status == FAILED for o in outcomes),
                "marketplace": market_url,
                "marketplace_error": session.market_error,
                "pipelines": [asdict(o) for o in outcomes],
            }
        )
        return
    if not outcomes:
        session.say("Nothing selected; nothing changed.")
        return
    session.say()
    output.table(
        "Summary",
        ["pipeline", "result", "tools registered", "datasets created", "schedule", "note"],
        (
            [
                escape(str(v))
                for v in (
                    o.pipeline,
                    o.status,
                    ", ".join(o.registered_tools),
                    ", ".join(o.created_datasets),
                    o.schedule or "",
                    o.message,
                )
            ]
            for o in outcomes
        ),
    )
