"""``maoctl notifications test|dead-letters``, through the API."""

from __future__ import annotations

from typing import Annotated

import typer

from mao.cli import output
from mao.cli.client import APIError
from mao.cli.state import JsonOpt, state
from mao.validation import check_name

notifications_app = typer.Typer(help="Notifications of failed runs and other events.", no_args_is_help=True)


@notifications_app.command("test")
def notifications_test(
    ctx: typer.Context,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule.")] = None,
    json: JsonOpt = False,
) -> None:
    """Send a test event through the configured rules; exits non-zero if a target failed."""
    st = state(ctx, json)
    body = {"rule": check_name(rule, "notification rule name")} if rule else {}
    result = st.client.post("/notifications/test", json=body)
    if st.json:
        output.print_json(result)
    else:
        output.table(
            "Test deliveries",
            ["rule", "target", "result"],
            (
                [d["rule"], d["target"], "delivered" if d["delivered"] else f"failed: {d.get('error') or ''}"]
                for d in result["deliveries"]
            ),
        )
    if not result["ok"]:
        failed = sum(not d["delivered"] for d in result["deliveries"])
        raise APIError(f"{failed} of {len(result['deliveries'])} targets did not take the test event")


@notifications_app.command("dead-letters")
def dead_letters(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Newest N.")] = 100,
    json: JsonOpt = False,
) -> None:
    """Events a webhook did not take after every retry, newest first."""
    st = state(ctx, json)
    letters = st.client.get("/notifications/dead-letters", params={"limit": limit})["dead_letters"]
    if st.json:
        output.print_json(letters)
        return
    output.table(
        "Dead letters",
        ["id", "created", "rule", "event", "target", "attempts", "error"],
        (
            [d["id"], output.timestamp(d["created_at"]), d["rule"], d["event"], d["target"], d["attempts"], d["error"]]
            for d in letters
        ),
        no_wrap=("id", "created"),
    )
