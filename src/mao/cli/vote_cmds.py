"""``maoctl dataset votes`` and ``maoctl dataset resolve``: agreement by vote, through the API."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from mao.cli import output
from mao.cli.registry_cmds import dataset_app
from mao.cli.state import JsonOpt, state
from mao.slots import normalize_slot
from mao.validation import check_name

DatasetArg = Annotated[str, typer.Argument(help="Dataset name.")]


def _short(value: str | None) -> str:
    return (value or "")[:12]


def _ballot(ballot: dict[str, Any] | None, slot: dict[str, Any]) -> str:
    if ballot is None:
        return "missing"
    mark = " (late)" if ballot.get("late") else ""
    return f"{_short(ballot['output_id'])} @ {_short(ballot.get('commit'))}{mark}"


@dataset_app.command("votes")
def dataset_votes(
    ctx: typer.Context,
    name: DatasetArg,
    slot: Annotated[str | None, typer.Option("--slot", help="Only this slot (ISO-8601 UTC).")] = None,
    json: JsonOpt = False,
) -> None:
    """Per slot: each elector's ballot or its absence, the outcome, the winner, the dissenters and
    the ballots that did not count (with the reason)."""
    st = state(ctx, json)
    check_name(name, "dataset name")
    params = {"slot": normalize_slot(slot)} if slot else {}
    result = st.client.get(f"/datasets/{quote(name)}/votes", params=params)
    if st.json:
        output.print_json(result)
        return
    output.table(
        f"Votes on {name}",
        ["slot", "pipeline/step", "outcome", "winner", "commit", "dissenters", "missing", "rejected"],
        (
            [
                s["slot"],
                f"{s['pipeline']}/{s['step']}",
                s["outcome"],
                _short(s["winner"]),
                _short(s["commit"]),
                ", ".join(s["dissenters"]),
                ", ".join(s["missing"]),
                ", ".join(sorted(s.get("rejected") or {})),
            ]
            for s in result["slots"]
        ),
        no_wrap=("slot", "outcome", "winner", "commit"),
        optional=("missing", "dissenters", "rejected"),  # each ballot table below names them too
    )
    for s in result["slots"]:
        winners = set(s.get("for") or [])
        rejected = s.get("rejected") or {}
        output.table(
            f"Ballots for {s['pipeline']}/{s['step']} at {s['slot']} ({s['outcome']})",
            ["instance", "ballot (output @ commit)", "role"],
            (
                [
                    inst,
                    _ballot(b, s),
                    f"rejected: {rejected[inst]}"
                    if inst in rejected
                    else "winner"
                    if inst in winners
                    else "dissenter"
                    if inst in s["dissenters"]
                    else "missing"
                    if b is None
                    else "",
                ]
                for inst, b in s["ballots"].items()
            ),
            no_wrap=("ballot (output @ commit)", "role"),
        )


@dataset_app.command("resolve")
def dataset_resolve(
    ctx: typer.Context,
    name: DatasetArg,
    slot: Annotated[str, typer.Option("--slot", help="The disputed slot (ISO-8601 UTC).")],
    pick: Annotated[str, typer.Option("--pick", help="The instance whose ballot becomes ground-truth.")],
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="When several steps disputed this slot.")] = None,
    step: Annotated[str | None, typer.Option("--step", help="When several steps disputed this slot.")] = None,
    json: JsonOpt = False,
) -> None:
    """Settle a disputed slot: the picked instance's change becomes the slot's tally commit."""
    st = state(ctx, json)
    check_name(name, "dataset name")
    check_name(pick, "instance name")
    body: dict[str, Any] = {"slot": normalize_slot(slot), "pick": pick}
    if pipeline:
        body["pipeline"] = check_name(pipeline, "pipeline name")
    if step:
        body["step"] = check_name(step, "step name")
    result = st.client.post(f"/datasets/{quote(name)}/resolve", json=body)
    output.print_json(result) if st.json else output.ok(
        f"slot {body['slot']} of {name} resolved with {pick}'s ballot: {result['commit']}"
    )


@dataset_app.command("verify")
def dataset_verify(
    ctx: typer.Context,
    name: DatasetArg,
    json: JsonOpt = False,
) -> None:
    """The first-parent chain of the dataset's ground-truth, each commit's signer, and the first
    commit this instance does not trust (it keeps working from the last trusted one)."""
    st = state(ctx, json)
    check_name(name, "dataset name")
    result = st.client.get(f"/datasets/{quote(name)}/verify")
    if st.json:
        output.print_json(result)
        return
    output.table(
        f"ground-truth of {name}",
        ["commit", "kind", "signature", "signer", "trusted", "reason", "subject"],
        (
            [
                _short(c["commit"]),
                c["kind"],
                c["status"],
                c.get("signer") or "",
                "yes" if c["trusted"] else "NO",
                c["reason"],
                c["subject"],
            ]
            for c in result["commits"]
        ),
        no_wrap=("commit", "kind", "signature", "trusted"),
        optional=("subject",),
    )
    first = result.get("first_untrusted")
    if first:
        output.console.print(
            f"[red]✗[/red] first untrusted commit: {first}; this instance works from {_short(result.get('trusted'))}",
            markup=True,
            highlight=False,
        )
        raise typer.Exit(1)
    else:
        output.ok(f"every commit of {name}'s ground-truth is trusted (head {_short(result.get('head'))})")
