"""``maoctl insights``: what pipeline steps published from their tools' ``insights.json``."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated

import typer

from mao.cli import output
from mao.cli.state import JsonOpt, state
from mao.validation import check_name

SKIPPED_HEADER = "X-MAO-Skipped-Insights"
"""Names the stored insights a listing left out (mao.insights.SKIPPED_HEADER; not imported,
which would load the federation queue into every ``maoctl insights`` call)."""

insights_app = typer.Typer(help="Insights the pipeline steps published (insights.json).", no_args_is_help=True)


def _value(value: object, width: int = 40) -> str:
    text = jsonlib.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


@insights_app.command("list")
def insights_list(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Every published insight: pipeline, step, the run and instance that made it, its value."""
    st = state(ctx, json)
    items = st.client.get("/insights")
    skipped = st.client.last_headers.get(SKIPPED_HEADER)
    if skipped:
        output.err_console.print(
            f"Note: left out stored insights that cannot be served (see the server's log): {skipped}",
            markup=False,
            highlight=False,
        )
    if st.json:
        output.print_json(items)
        return
    output.table(
        "Insights",
        ["pipeline/step", "instance", "run", "slot", "value"],
        (
            [f"{i['pipeline']}/{i['step']}", i.get("instance"), i.get("run_id"), i.get("slot"), _value(i["value"])]
            for i in items
        ),
        no_wrap=("run", "slot"),
    )


@insights_app.command("get")
def insights_get(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="Pipeline name.")],
    step: Annotated[str, typer.Argument(help="Step name.")],
    json: JsonOpt = False,
) -> None:
    """One step's insight; the value is printed as JSON."""
    st = state(ctx, json)
    check_name(pipeline, "pipeline name")
    check_name(step, "step name")
    item = st.client.get(f"/insights/{pipeline}/{step}")
    if st.json:
        output.print_json(item)
        return
    output.fields({k: v for k, v in item.items() if k != "value"}, title=f"insight {pipeline}/{step}")
    print(jsonlib.dumps(item["value"], indent=2, sort_keys=True))
