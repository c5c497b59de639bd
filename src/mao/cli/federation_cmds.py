"""``maoctl federation``: who is in the federation, and etcd membership for operators."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from mao.cli import output
from mao.cli.state import JsonOpt, State, state
from mao.status import RunStatus

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


def _members_table(members: list[dict[str, Any]]) -> None:
    output.table(
        "etcd members",
        ["id", "status", "name", "peer URLs", "client URLs"],
        (
            [m["id_hex"], m["status"], m["name"], ", ".join(m["peer_urls"]), ", ".join(m["client_urls"])]
            for m in members
        ),
        no_wrap=("id", "status"),
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


@federation_app.command("schedules")
def schedules(
    ctx: typer.Context,
    pipeline: Annotated[str | None, typer.Argument(help="Only this pipeline's schedules.")] = None,
    json: JsonOpt = False,
) -> None:
    """Every instance's schedules: pipeline, cron, timezone, mode, the pipeline's slot deadline."""
    st = state(ctx, json)
    params = {"pipeline": pipeline} if pipeline else {}
    data = st.client.get("/federation/schedules", params=params)["schedules"]
    if st.json:
        output.print_json(data)
        return
    output.table(
        "Schedules in the federation",
        ["pipeline", "instance", "cron", "timezone", "mode", "deadline", "since (UTC)"],
        (
            [
                s["pipeline"],
                s["instance"],
                s["cron"],
                s["timezone"],
                s["mode"],
                s.get("deadline") or "",
                output.timestamp(s.get("since")),
            ]
            for s in data
        ),
        no_wrap=("cron", "mode", "deadline", "since (UTC)"),
        optional=("timezone",),
    )


SinceOpt = Annotated[str, typer.Option("--since", help="How far back: 24h, 90m, 7d or an ISO-8601 time.")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="End of the window (ISO-8601); now by default.")]


def _window(pipeline: str, since: str, until: str | None) -> dict[str, str | bool]:
    params: dict[str, str | bool] = {"pipeline": pipeline, "since": since}
    if until:
        params["until"] = until
    return params


@federation_app.command("coverage")
def coverage(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="The pipeline.")],
    since: SinceOpt = "24h",
    until: UntilOpt = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Read the git remotes' node commits too and restore the index.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Which slots of a pipeline were delivered, by whom; the gaps first.

    ✓ delivered, ✗ failed, – missing (due, did nothing), · not due, … slot still open.
    """
    from mao.coverage.grid import SYMBOLS

    st = state(ctx, json)
    params = _window(pipeline, since, until)
    if rebuild:
        params["rebuild"] = True
    data = st.client.get("/federation/coverage", params=params)
    if st.json:
        output.print_json(data)
        return
    counts = data["counts"]
    if data["gaps"]:
        output.console.print(
            f"[bold red]{len(data['gaps'])} gap(s)[/bold red] (slots no instance delivered): " + ", ".join(data["gaps"])
        )
    else:
        output.console.print(f"no gaps: {counts['covered']} of {counts['closed']} ended slot(s) delivered")
    late = data.get("deadlines_missed") or []
    if late:
        output.console.print(
            f"[bold red]{len(late)} slot(s) past their deadline[/bold red] (no delivered run or decision by then): "
            + ", ".join(late)
        )
    instances = data["instances"]
    output.table(
        f"Coverage of {pipeline} since {output.utc(data['since'])}",
        ["slot", "mode", *instances],
        (
            [
                r["slot"]
                + (" (open)" if r["open"] else "")
                + (" (deadline missed)" if r.get("deadline") == "missed" else ""),
                r["mode"],
                *(SYMBOLS[r["cells"][i]] for i in instances),
            ]
            for r in data["slots"]
        ),
        no_wrap=("slot", "mode"),
    )
    output.console.print("✓ delivered  ✗ failed  – missing  · not due  … open")


@federation_app.command("backfill")
def backfill(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="The pipeline.")],
    since: SinceOpt = "24h",
    until: UntilOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the gaps; run nothing.")] = False,
    json: JsonOpt = False,
) -> None:
    """Run, on this instance, each slot nobody delivered (oldest first), one after the other."""
    st = state(ctx, json)
    gaps = st.client.get("/federation/coverage", params=_window(pipeline, since, until))["gaps"]
    done: list[dict[str, Any]] = []
    if dry_run or not gaps:
        if st.json:
            output.print_json({"pipeline": pipeline, "gaps": gaps, "runs": done, "dry_run": dry_run})
        else:
            output.ok(f"{len(gaps)} gap(s) to fill" + (": " + ", ".join(gaps) if gaps else ""))
        return
    failed = 0
    for k, slot in enumerate(gaps, 1):
        started = st.client.post("/pipeline/run", json={"name": pipeline, "slot": slot})
        run = _wait_run(st, started["run_id"])
        done.append({"slot": slot, "run_id": run["id"], "status": run["status"]})
        failed += run["status"] != RunStatus.SUCCEEDED
        if not st.json:
            mark = "✓" if run["status"] == RunStatus.SUCCEEDED else "✗"
            output.console.print(f"[{k}/{len(gaps)}] {mark} slot {slot}: run {run['id']} {run['status']}")
    if st.json:
        output.print_json({"pipeline": pipeline, "gaps": gaps, "runs": done, "dry_run": False})
    if failed:
        raise typer.Exit(1)


def _wait_run(st: State, run_id: int, poll: float = 0.5) -> dict[str, Any]:
    while True:
        run: dict[str, Any] = st.client.get(f"/runs/{run_id}")
        if not RunStatus(run["status"]).active:
            return run
        time.sleep(poll)


def _register_security() -> None:
    from mao.cli.federation_security_cmds import register

    register(federation_app)


_register_security()


def _register_signing() -> None:
    from mao.cli.signing_cmds import register

    register(federation_app=federation_app)


_register_signing()
