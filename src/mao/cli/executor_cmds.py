"""``maoctl executor``: run the executor as a service of its own, next to the container engine."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from mao.config import load_settings
from mao.errors import InvalidInput
from mao.tokens import EXECUTOR_TOKEN_FILE, is_loopback, resolve_executor_token

executor_app = typer.Typer(
    help="The executor service: runs the steps' containers for an orchestrator (its executor_url).",
    no_args_is_help=True,
)

log = logging.getLogger(__name__)

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
    data_root: Annotated[
        str | None,
        typer.Option(
            "--data-root",
            help="Only mount dataset directories under this one (MAO_EXECUTOR_DATA_ROOT; default: the data dir).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="Log level: debug, info, warning or error.")] = "info",
) -> None:
    """Start the executor service: steps sent by the orchestrator run on the configured engine
    (docker_host, allow_docker_socket, network_mode). It always needs a token: executor_token
    (MAO_EXECUTOR_TOKEN), else the one it generates into <data_dir>/executor-token (mode 0600),
    where the orchestrator finds it."""
    import uvicorn

    from mao.executor.docker import DockerExecutor
    from mao.executor.service import create_executor_app
    from mao.web.hosts import HostPolicy

    root = ctx.find_root().obj
    settings = load_settings(config or getattr(root, "config", None), executor_data_root=data_root)
    uid_gid = _owner(owner)
    token = resolve_executor_token(settings, public=not is_loopback(host), create=True) or ""
    mount_root = settings.executor_data_root or settings.data_dir
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.executor_token is None:
        log.info("token kept in %s", settings.data_dir / EXECUTOR_TOKEN_FILE)
    log.info("mounting dataset directories only under %s", mount_root)
    executor = DockerExecutor.from_url(
        settings.docker_host,
        allow_docker_socket=settings.allow_docker_socket,
        network_mode=settings.network_mode,
        instance=settings.instance_name,
        owner=uid_gid,
    )
    try:
        # the names it answers to: loopback, its bind address, the host of executor_url (the
        # orchestrator's name for it, e.g. "executor" in the compose deployment), allowed_hosts
        hosts = HostPolicy.of(bind=host, public_url=settings.executor_url, allowed=settings.allowed_hosts)
        app = create_executor_app(executor, token=token, data_root=mount_root, hosts=hosts)
        uvicorn.run(app, host=host, port=port, log_level=log_level.lower())
    finally:
        executor.close()
