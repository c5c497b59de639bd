"""``maoctl tool``, ``maoctl dataset``: the registry, through the API."""

from __future__ import annotations

import json as json_module
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from mao.cli import output
from mao.cli.state import JsonOpt, state
from mao.validation import check_name

tool_app = typer.Typer(help="Register, list and remove tools (container images).", no_args_is_help=True)
dataset_app = typer.Typer(help="Register, list and remove datasets (git repositories).", no_args_is_help=True)

NameOpt = Annotated[str | None, typer.Option("--name", help="Show only this one.")]


def _show_many(title: str, items: dict[str, Any], columns: list[str], json: bool) -> None:
    if json:  # a listing is a JSON list of objects, each with its name, as everywhere in maoctl
        output.print_json([{"name": name, **body} for name, body in items.items()])
        return
    output.table(
        title,
        ["name", *columns],
        ([name, *(_cell(v.get(c)) for c in columns)] for name, v in items.items()),
        no_wrap=("policy",),
        ellipsis=("description",),
        optional=("description", "author", "artefact", "nodes"),
    )


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


@tool_app.command("list")
@tool_app.command("get", help="The same as list (the first MAO's verb).")
def tool_get(ctx: typer.Context, name: NameOpt = None, json: JsonOpt = False) -> None:
    """List the registered tools, or show one with --name."""
    st = state(ctx, json)
    if name:
        tool = st.client.get(f"/registry/tools/{check_name(name, 'tool name')}")
        output.print_json(tool) if st.json else output.fields(tool, title=f"tool {name}")
        return
    _show_many("Tools", st.client.get("/registry/tools"), ["image", "author", "artefact", "description"], st.json)


@tool_app.command("add")
def tool_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Tool name: letters, digits, - and _.")],
    image: Annotated[str, typer.Option("--image", help="Container image, e.g. mao/collector:1.0.")],
    author: Annotated[str, typer.Option("--author", help="Who made or maintains the tool.")] = "",
    data_repo: Annotated[
        str, typer.Option("--data_repo", "--data-repo", help="Git URL of the tool's data repository.")
    ] = "",
    code_repo: Annotated[str, typer.Option("--code_repo", "--code-repo", help="URL of the tool's source code.")] = "",
    artefact: Annotated[str, typer.Option("--artefact", help="Kind of artefact the tool studies.")] = "",
    description: Annotated[str, typer.Option("--description", help="What the tool does, in a sentence.")] = "",
    json: JsonOpt = False,
) -> None:
    """Register a tool in the federation registry."""
    st = state(ctx, json)
    body = {
        "name": name,
        "image": image,
        "author": author,
        "data_repo": data_repo,
        "code_repo": code_repo,
        "artefact": artefact,
        "description": description,
    }
    result = st.client.post("/registry/tools", json=body)
    output.print_json(result) if st.json else output.ok(f"tool {name} registered ({image})")
    if result.get("warning") and not st.json:  # with --json it is in the object printed
        output.err_console.print(f"[yellow]Warning:[/yellow] {escape(result['warning'])}", highlight=False)


ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force", help="Remove it even though pipelines use it (their runs then fail); never during a run using it."
    ),
]


@tool_app.command("remove")
def tool_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="The tool to remove.")],
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Remove a tool from the registry; refused while pipelines use it, unless --force."""
    st = state(ctx, json)
    result = st.client.delete(f"/registry/tools/{check_name(name, 'tool name')}", params=_force(force))
    output.print_json(result) if st.json else output.ok(f"tool {name} removed")


def _force(force: bool) -> dict[str, str]:
    return {"force": "true"} if force else {}


@dataset_app.command("list")
@dataset_app.command("get", help="The same as list (the first MAO's verb).")
def dataset_get(ctx: typer.Context, name: NameOpt = None, json: JsonOpt = False) -> None:
    """List the registered datasets, or show one with --name."""
    st = state(ctx, json)
    if name:
        ds = st.client.get(f"/registry/datasets/{check_name(name, 'dataset name')}")
        output.print_json(ds) if st.json else output.fields(ds, title=f"dataset {name}")
        return
    _show_many("Datasets", st.client.get("/registry/datasets"), ["master", "policy", "nodes"], st.json)


@dataset_app.command("add")
def dataset_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Dataset name: letters, digits, - and _.")],
    git_url: Annotated[
        str, typer.Option("--git_url", "--git-url", help="ssh, https or file URL, or an absolute path.")
    ],
    policy: Annotated[
        str, typer.Option("--policy", help="How ground-truth is agreed: 'merge' every node change, or 'vote' per slot.")
    ] = "merge",
    vote_deadline: Annotated[
        int, typer.Option("--vote-deadline", help="Seconds after a slot opens by which it is tallied (policy vote).")
    ] = 600,
    record_schema: Annotated[
        Path | None,
        typer.Option("--record-schema", help="A JSON Schema file that gateway records must match.", dir_okay=False),
    ] = None,
    records_path: Annotated[
        str | None,
        typer.Option("--records-path", help="Where gateway records go (default records/{token}.jsonl)."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Register a dataset (a git repository) in the federation registry."""
    st = state(ctx, json)
    if policy not in ("merge", "vote"):
        raise typer.BadParameter(f"unknown policy {policy!r}: use merge or vote", param_hint="--policy")
    if vote_deadline < 1:
        raise typer.BadParameter("must be at least 1 second", param_hint="--vote-deadline")
    body: dict[str, Any] = {"master": git_url, "nodes": [], "policy": policy, "vote_deadline": vote_deadline}
    if record_schema is not None:
        body["record_schema"] = _json_file(record_schema, "--record-schema")
    if records_path is not None:
        body["records_path"] = records_path
    result = st.client.post("/registry/datasets", json={"name": name, "body": body})
    output.print_json(result) if st.json else output.ok(f"dataset {name} registered ({git_url}, policy {policy})")


@dataset_app.command("remove")
def dataset_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="The dataset to remove.")],
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Remove a dataset from the registry (its repository is left untouched); refused while
    pipelines read or write it, unless --force."""
    st = state(ctx, json)
    result = st.client.delete(f"/registry/datasets/{check_name(name, 'dataset name')}", params=_force(force))
    output.print_json(result) if st.json else output.ok(f"dataset {name} removed")


def _json_file(path: Path, option: str) -> Any:
    try:
        return json_module.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint=option) from None
    except ValueError as exc:
        raise typer.BadParameter(f"{path} is not JSON: {exc}", param_hint=option) from None
