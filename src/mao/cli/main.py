"""``maoctl``: the command-line client of the MAO orchestrator."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import click
import typer
import typer.core
from rich.markup import escape

from mao import __version__
from mao.cli import vote_cmds  # noqa: F401 - adds `dataset votes` and `dataset resolve`
from mao.cli.executor_cmds import executor_app
from mao.cli.federation_cmds import federation_app
from mao.cli.gateway_cmds import gateway_app
from mao.cli.insights_cmds import insights_app
from mao.cli.instance_cmds import instance_app
from mao.cli.marketplace_cmds import marketplace_app
from mao.cli.notification_cmds import notifications_app
from mao.cli.output import err_console
from mao.cli.pipeline_cmds import pipeline_app, repo_app
from mao.cli.registry_cmds import dataset_app, tool_app
from mao.cli.runs_cmds import runs_app
from mao.cli.serve import serve
from mao.cli.state import DEFAULT_URL, State
from mao.errors import MAOError


def _flags_without_placeholder() -> None:
    """Recent typer shows ``<bool>`` after every flag (``--json <bool>``), as if it took a value."""
    option = getattr(typer.core, "TyperOption", None)
    original = getattr(option, "display_type_rich", None)
    if option is None or original is None or getattr(original, "_mao_patched", False):
        return

    def display_type_rich(self: Any, ctx: click.Context) -> str | None:
        return None if getattr(self, "is_flag", False) else original(self, ctx)

    display_type_rich._mao_patched = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich


_flags_without_placeholder()

app = typer.Typer(
    name="maoctl",
    help="Control a MAO orchestrator instance: tools, datasets, pipelines, runs and federations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"maoctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", envvar="MAO_URL", help="Orchestrator API URL.")] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="MAO_API_TOKEN", help="API token, if the API needs one.", show_default=False),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")] = False,
    config: Annotated[
        str | None, typer.Option("--config", envvar="MAO_CONFIG", help="YAML config file for local commands.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    ctx.obj = State(url=url, token=token, json=json, config=config)
    ctx.call_on_close(ctx.obj.close)


app.add_typer(tool_app, name="tool")
app.add_typer(dataset_app, name="dataset")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(repo_app, name="repo")
app.add_typer(runs_app, name="runs")
app.add_typer(instance_app, name="instance")
app.add_typer(marketplace_app, name="marketplace")
app.add_typer(federation_app, name="federation")
app.add_typer(executor_app, name="executor")
app.add_typer(insights_app, name="insights")
app.add_typer(gateway_app, name="gateway")
app.add_typer(notifications_app, name="notifications")
app.command("serve")(serve)


# Recent typer vendors click: its usage errors and aborts are not click's classes.
_USAGE_ERRORS: tuple[type[Exception], ...] = (click.exceptions.ClickException,)
if hasattr(typer, "TyperException"):
    _USAGE_ERRORS += (typer.TyperException,)
_ABORTS = (click.exceptions.Abort, typer.Abort)


_LISTING_VERBS = {"get", "list", "ls", "show"}


def _hint_commands(exc: Exception) -> None:
    """'No such command' names the group's commands, and ``list`` for a listing verb."""
    ctx = getattr(exc, "ctx", None)
    message = getattr(exc, "message", "")
    group = getattr(ctx, "command", None)
    if not isinstance(message, str) or not message.startswith("No such command") or ctx is None:
        return
    commands = getattr(group, "commands", None)
    if not isinstance(commands, dict):
        return
    visible = sorted(name for name, cmd in commands.items() if not getattr(cmd, "hidden", False))
    wanted = message.split("'")[1] if message.count("'") >= 2 else ""
    if wanted in _LISTING_VERBS and "list" in commands:
        message += f" Use '{ctx.command_path} list'."
    message += f" Commands: {', '.join(visible)}."
    exc.message = message  # type: ignore[attr-defined]


def _is_bad_value(exc: Exception) -> bool:
    """A value given and refused (not a missing one, whose usage text shows what is needed)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return "BadParameter" in names and "MissingParameter" not in names and hasattr(exc, "format_message")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors, non-zero exit codes, no tracebacks."""
    try:
        result = app(args=argv, prog_name="maoctl", standalone_mode=False)
    except _ABORTS:
        err_console.print("Aborted.")
        return 130
    except _USAGE_ERRORS as exc:
        _hint_commands(exc)
        if _is_bad_value(exc):  # a wrong value: one line, without the usage text
            err_console.print(f"Error: {escape(exc.format_message())}", highlight=False)  # type: ignore[attr-defined]
        elif hasattr(exc, "show"):
            exc.show()
        else:
            err_console.print(f"Error: {escape(str(exc))}", highlight=False)
        return int(getattr(exc, "exit_code", 2))
    except MAOError as exc:
        err_console.print(f"[red]Error:[/red] {escape(exc.message)}", highlight=False)
        return 1
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return 130
    except OSError as exc:
        err_console.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
