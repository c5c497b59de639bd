"""``maoctl federation``: who is in the federation, and etcd membership for operators."""

from __future__ import annotations

from typing import Annotated

import typer

from mao.cli import output
from mao.cli.state import JsonOpt, state

federation_app = typer.Typer(help="Federation status and etcd membership (for operators).", no_args_is_help=True)
member_app = typer.Typer(help="Add, list and remove etcd members.", no_args_is_help=True)
federation_app.add_typer(member_app, name="member")


@federation_app.command("status")
def status(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Which instances are alive (and the etcd members, when federated)."""
    st = state(ctx, json)
    data = st.client.get("/federation/status")
    if st.json:
        output.print_json(data)
        return
    output.console.print(f"this instance: [bold]{data['instance']}[/bold], registry {data['registry'].get('backend')}")
    output.table(
        "Instances",
        ["name", "api", "version", "last seen (s ago)"],
        ([i["name"], i.get("api_url"), i.get("version"), i.get("age")] for i in data["instances"]),
    )
    if "members" in data:
        _members_table(data["members"])


def _members_table(members: list[dict]) -> None:
    output.table(
        "etcd members",
        ["id", "status", "name", "peer URLs", "client URLs"],
        (
            [m["id_hex"], m["status"], m["name"], ", ".join(m["peer_urls"]), ", ".join(m["client_urls"])]
            for m in members
        ),
    )


@member_app.command("list")
def member_list(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List etcd members, started and unstarted."""
    st = state(ctx, json)
    data = st.client.get("/federation/members")["members"]
    output.print_json(data) if st.json else _members_table(data)


@member_app.command("add")
def member_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The joining instance's name.")],
    peer_url: Annotated[str, typer.Option("--peer-url", help="http://<new-instance-ip>:2380")],
    json: JsonOpt = False,
) -> None:
    """Add a new instance to the federation's etcd; prints the values to hand over."""
    st = state(ctx, json)
    data = st.client.post("/federation/members", json={"name": name, "peer_url": peer_url})
    if st.json:
        output.print_json(data)
        return
    output.ok(f"member {name} added ({data['member']['id_hex']}, unstarted until it joins)")
    print("\nSend these lines to the operator of the new instance:\n")
    for key, value in data["env"].items():
        print(f'{key}="{value}"')


@member_app.command("remove")
def member_remove(
    ctx: typer.Context,
    member: Annotated[str, typer.Argument(help="Member name or id.")],
    json: JsonOpt = False,
) -> None:
    """Remove a member from the federation's etcd."""
    st = state(ctx, json)
    data = st.client.delete(f"/federation/members/{member}")
    output.print_json(data) if st.json else output.ok(f"member {data['removed']['name'] or member} removed")
