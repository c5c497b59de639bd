"""``maoctl executor``: run the executor as a service of its own, next to the container engine."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from mao.cli.serve import _is_loopback
from mao.config import load_settings
from mao.errors import InvalidInput

executor_app = typer.Typer(
    help="The executor service: runs the steps' containers for an orchestrator (its executor_url).",
    no_args_is_help=True,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081


def _owner(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        uid, gid = (int(part) for part in value.split(":"))
    except ValueError:
        raise InvalidInput(f"invalid --owner {value!r}: give UID:GID, e.g. 1000:1000") from None
    if uid < 0 or gid < 0:
        raise InvalidInput(f"invalid --owner {value!r}: give UID:GID, e.g. 1000:1000")
    return uid, gid


@executor_app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", envvar="MAO_EXECUTOR_HOST", help="Address to bind.")] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", envvar="MAO_EXECUTOR_PORT", min=1, max=65535, help="Port.")
    ] = DEFAULT_PORT,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML config file (MAO_CONFIG).")] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner", envvar="MAO_EXECUTOR_OWNER", help="UID:GID to give output files to (default: this process's)."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Start the executor service: steps sent by the orchestrator run on the configured engine
    (docker_host, allow_docker_socket, network_mode). Needs api_token unless bound to loopback."""
    import uvicorn

    from mao.executor.docker import DockerExecutor
    from mao.executor.service import create_executor_app

    root = ctx.find_root().obj
    settings = load_settings(config or getattr(root, "config", None))
    if not _is_loopback(host) and not settings.api_token:
        raise InvalidInput(
            f"refusing to expose the executor service on {host} without a token: set MAO_API_TOKEN "
            "(or api_token in the config file) here and on the orchestrator, or bind to 127.0.0.1"
        )
    uid_gid = _owner(owner)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    executor = DockerExecutor.from_url(
        settings.docker_host,
        allow_docker_socket=settings.allow_docker_socket,
        network_mode=settings.network_mode,
        instance=settings.instance_name,
        owner=uid_gid,
    )
    try:
        app = create_executor_app(executor, token=settings.api_token)
        uvicorn.run(app, host=host, port=port, log_level=log_level.lower())
    finally:
        executor.close()
