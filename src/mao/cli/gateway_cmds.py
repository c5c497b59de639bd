"""``maoctl gateway token create|list|revoke``: tokens of tools that are not instances, through the API."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.markup import escape

from mao.cli import output
from mao.cli.state import JsonOpt, state
from mao.gateway.tokens import DEFAULT_RATE, parse_rate
from mao.validation import check_name

gateway_app = typer.Typer(help="The gateway for external tools: their tokens.", no_args_is_help=True)
token_app = typer.Typer(help="Create, list and revoke gateway tokens.", no_args_is_help=True)
gateway_app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Token name; names its records' branch gateway-<name>.")],
    dataset: Annotated[str, typer.Option("--dataset", help="The one dataset it may use.")],
    scope: Annotated[str, typer.Option("--scope", help="write (append records, read files) or read.")],
    rate: Annotated[str, typer.Option("--rate", help="Requests allowed: N/s, N/min or N/h.")] = DEFAULT_RATE,
    json: JsonOpt = False,
) -> None:
    """Create a token; its secret is printed this once (only its hash is kept)."""
    st = state(ctx, json)
    check_name(name, "token name")
    check_name(dataset, "dataset name")
    if scope not in ("read", "write"):
        raise typer.BadParameter(f"unknown scope {scope!r}: use read or write", param_hint="--scope")
    parse_rate(rate)
    result = st.client.post("/gateway/tokens", json={"name": name, "dataset": dataset, "scope": scope, "rate": rate})
    if st.json:
        output.print_json(result)
        return
    token = result["token"]
    output.ok(f"gateway token {name}: {token['scope']} on dataset {token['dataset']}, {token['rate']}")
    output.console.print("secret (shown once, keep it safe):", highlight=False)
    print(result["secret"])


@token_app.command("list")
def token_list(ctx: typer.Context, json: JsonOpt = False) -> None:
    """The gateway tokens (never their secrets)."""
    st = state(ctx, json)
    tokens = st.client.get("/gateway/tokens")["tokens"]
    if st.json:
        output.print_json(tokens)
        return
    output.table(
        "Gateway tokens",
        ["name", "dataset", "scope", "rate", "created", "revoked"],
        (
            [
                t["name"],
                t["dataset"],
                t["scope"],
                t["rate"],
                output.timestamp(t["created_at"]),
                output.timestamp(t["revoked_at"]),
            ]
            for t in tokens
        ),
        no_wrap=("name", "created", "revoked"),
    )


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Token name.")], json: JsonOpt = False
) -> None:
    """Revoke a token for good: its next request is refused (401)."""
    st = state(ctx, json)
    result = st.client.delete(f"/gateway/tokens/{quote(check_name(name, 'token name'))}")
    if st.json:
        output.print_json(result)
    elif result.get("already_revoked"):
        when = output.utc(result["token"].get("revoked_at"))
        output.console.print(f"gateway token {escape(name)} was already revoked ({when}); nothing changed")
    else:
        output.ok(f"gateway token {escape(name)} revoked")
