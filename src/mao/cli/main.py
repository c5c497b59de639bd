"""``maoctl``: the command-line client of the MAO orchestrator.

Start-up stays light: ``maoctl --help`` imports typer, this module and its defaults only.
Each command group lives in its own module, imported when that command runs (or its own
``--help`` is asked for). :data:`COMMANDS` names each one's ``"module:attribute"`` (a ``typer.Typer``
group or a command function) and the one line ``maoctl --help`` shows for it. A new
command group is one line there, e.g.::

    "metrics": ("mao.cli.metrics_cmds:metrics_app", "Prometheus metrics of this instance."),

with the same line as the first line of the group's ``help``. Command modules import what
they need (httpx, pydantic, the settings, rich tables) themselves; this module imports
none of it at start.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from mao import __version__
from mao.cli.defaults import DEFAULT_URL

if TYPE_CHECKING:
    import click

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": (
        "mao.cli.serve:serve",
        "Start the orchestrator: REST API, scheduler and executor, on the configured stores.",
    ),
    # pipeline_cmds adds list-scheduled and stop to tool_app
    "tool": ("mao.cli.pipeline_cmds:tool_app", "Register, list and remove tools (container images)."),
    # vote_cmds adds votes and resolve to dataset_app
    "dataset": ("mao.cli.vote_cmds:dataset_app", "Register, list and remove datasets (git repositories)."),
    "pipeline": ("mao.cli.pipeline_cmds:pipeline_app", "Define, run and schedule pipelines."),
    "repo": ("mao.cli.pipeline_cmds:repo_app", "Local-only datasets: bare git repositories on this instance."),
    "runs": ("mao.cli.runs_cmds:runs_app", "Run history: list, show, logs, cancel."),
    "instance": ("mao.cli.instance_cmds:instance_app", "Install and initialise this MAO instance."),
    "marketplace": (
        "mao.cli.marketplace_cmds:marketplace_app",
        "Browse the MAO marketplace (federations, tools, pipelines) or host a private catalogue.",
    ),
    "federation": (
        "mao.cli.federation_cmds:federation_app",
        "Federation status and etcd membership (for operators).",
    ),
    "executor": (
        "mao.cli.executor_cmds:executor_app",
        "The executor service: runs the steps' containers for an orchestrator (its executor_url).",
    ),
    "insights": ("mao.cli.insights_cmds:insights_app", "Insights the pipeline steps published (insights.json)."),
    "gateway": ("mao.cli.gateway_cmds:gateway_app", "The gateway for external tools: their tokens."),
    "notifications": (
        "mao.cli.notification_cmds:notifications_app",
        "Notifications of failed runs and other events.",
    ),
}
"""Command groups by name: ``("module:attribute", one-line help)``, in the order ``--help`` lists them."""


def load_command(name: str) -> Any:
    """The real command ``name`` of :data:`COMMANDS` (a click command), its module imported now."""
    target, _ = COMMANDS[name]
    module, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    command: Any
    if isinstance(found, typer.Typer):
        command = typer.main.get_group(found)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(found)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(typer.core.TyperGroup):
    """The root group: lists :data:`COMMANDS` by their one-line help, and imports a
    command's module only when that command is run."""

    # ctx and commands are click's types: typer's vendored click (recent typer) or click itself
    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        return typer.core.TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][1])  # listed, not loaded

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in COMMANDS and args[0] not in self.commands:
            self.commands[args[0]] = load_command(args[0])
        return super().resolve_command(ctx, args)


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


def _import_help_formatter() -> None:
    """Import typer's help formatter without ``rich.markdown`` and ``rich.traceback``.

    ``typer.rich_utils`` imports both at its top (markdown-it and pygments with them: two
    thirds of its import time) for the ``markdown`` markup mode and pretty tracebacks, which
    maoctl does not use. Stand-ins take their place while it is imported; each loads the
    real class if it is ever used. Any surprise and it is imported the ordinary way."""
    if "typer.rich_utils" in sys.modules:
        return
    import types

    def stand_in(module: str, name: str) -> type:
        def real() -> Any:
            return getattr(importlib.import_module(module), name)

        class Meta(type):
            def __getattr__(cls, attribute: str) -> Any:
                return getattr(real(), attribute)

        class StandIn(metaclass=Meta):
            def __new__(cls, *args: Any, **kwargs: Any) -> Any:
                return real()(*args, **kwargs)

        return StandIn

    placed = []
    for module, name in (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback")):
        if module not in sys.modules:
            fake = types.ModuleType(module)
            setattr(fake, name, stand_in(module, name))
            sys.modules[module] = fake
            placed.append(module)
    try:
        importlib.import_module("typer.rich_utils")
    except Exception:  # noqa: BLE001 - a typer that imports more from them: the ordinary import
        sys.modules.pop("typer.rich_utils", None)
    finally:
        for module in placed:
            del sys.modules[module]  # whoever imports them from now on gets the real ones
    importlib.import_module("typer.rich_utils")


app = typer.Typer(
    name="maoctl",
    cls=LazyGroup,
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
    from mao.cli.state import State

    ctx.obj = State(url=url, token=token, json=json, config=config)
    ctx.call_on_close(ctx.obj.close)


def _exceptions(name: str) -> tuple[type[BaseException], ...]:
    """The exception class ``name`` of typer's vendored click and, if loaded, of click itself:
    recent typer vendors click, so its usage errors and aborts are not click's classes."""
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


_LISTING_VERBS = {"get", "list", "ls", "show"}


def _hint_commands(exc: Exception) -> None:
    """'No such command' names the group's commands, and ``list`` for a listing verb."""
    ctx = getattr(exc, "ctx", None)
    message = getattr(exc, "message", "")
    group = getattr(ctx, "command", None)
    if not isinstance(message, str) or not message.startswith("No such command") or ctx is None:
        return
    if group is None or not isinstance(getattr(group, "commands", None), dict):
        return
    names = group.list_commands(ctx)
    visible = sorted(name for name in names if not getattr(group.get_command(ctx, name), "hidden", False))
    wanted = message.split("'")[1] if message.count("'") >= 2 else ""
    if wanted in _LISTING_VERBS and "list" in names:
        message += f" Use '{ctx.command_path} list'."
    message += f" Commands: {', '.join(visible)}."
    exc.message = message  # type: ignore[attr-defined]


def _is_bad_value(exc: Exception) -> bool:
    """A value given and refused (not a missing one, whose usage text shows what is needed)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return "BadParameter" in names and "MissingParameter" not in names and hasattr(exc, "format_message")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors, non-zero exit codes, no tracebacks."""
    args = sys.argv[1:] if argv is None else argv
    if not args or "--help" in args:
        _import_help_formatter()
    try:
        result = app(args=args, prog_name="maoctl", standalone_mode=False)
    except KeyboardInterrupt:
        from mao.cli.output import err_console

        err_console.print("Interrupted.")
        return 130
    except Exception as exc:  # noqa: BLE001 - sorted out in _report, which re-raises what it does not know
        return _report(exc)
    return result if isinstance(result, int) else 0


def _report(exc: Exception) -> int:
    """One line on stderr (the usage text too for a missing option); the exit code."""
    from rich.markup import escape

    from mao.cli.output import err_console
    from mao.errors import MAOError

    if isinstance(exc, (*_exceptions("Abort"), typer.Abort)):
        err_console.print("Aborted.")
        return 130
    typer_errors = (typer.TyperException,) if hasattr(typer, "TyperException") else ()
    if isinstance(exc, (*_exceptions("ClickException"), *typer_errors)):
        _hint_commands(exc)
        if _is_bad_value(exc):  # a wrong value: one line, without the usage text
            err_console.print(f"Error: {escape(exc.format_message())}", highlight=False)  # type: ignore[attr-defined]
        elif hasattr(exc, "show"):
            exc.show()
        else:
            err_console.print(f"Error: {escape(str(exc))}", highlight=False)
        return int(getattr(exc, "exit_code", 2))
    if isinstance(exc, MAOError):
        err_console.print(f"[red]Error:[/red] {escape(exc.message)}", highlight=False)
        return 1
    if isinstance(exc, OSError):
        err_console.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
        return 1
    raise exc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
