"""``maoctl serve``: run the orchestrator's API (and its scheduler) in this process."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import IO, Annotated

import typer

from mao.config import Settings, load_settings
from mao.errors import Conflict
from mao.tokens import check_token, is_loopback, resolve_api_token

log = logging.getLogger(__name__)


def lock_data_dir(data_dir: Path) -> IO[str]:
    """One orchestrator per data directory: a second one would take the first one's
    running runs for crashed ones. The lock is held until the process exits. A new data
    directory is made 0700 (see :func:`open_store` for one from before)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = open(data_dir / ".orchestrator.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise Conflict(f"an orchestrator (pid {holder}) is already serving the data directory {data_dir}") from exc
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc.strerror}"
            raise Conflict(f"{host}:{port} {reason}; choose another with --port or MAO_API_PORT") from exc


def open_store(settings: Settings) -> None:
    """Open and migrate the local store before serving, so that a damaged or unreachable
    store, or a missing or wrong key of its private variables, is one line and a non-zero
    exit, not a traceback from the server's start-up. Then the data directory is made 0700
    and a SQLite store 0600, with a warning for each that was open to others."""
    from mao.store import Store, make_engine
    from mao.store.files import private_dir
    from mao.store.secrets import SecretKeys

    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    store = Store(engine, SecretKeys(settings.secrets_key_file))
    try:
        store.setup()
    finally:
        store.close()
    private_dir(settings.data_dir)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default 127.0.0.1, MAO_API_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8080, MAO_API_PORT).")] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML config file (MAO_CONFIG).")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Data directory (MAO_DATA_DIR).")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="Log level: debug, info, warning or error.")] = "info",
) -> None:
    """Start the orchestrator: REST API, scheduler and executor, on the configured stores."""
    import uvicorn

    from mao.api.app import create_app

    settings = load_settings(config or ctx.find_root().obj.config, api_host=host, api_port=port, data_dir=data_dir)
    check_token(settings.api_token, public=not is_loopback(settings.api_host), setting="MAO_API_TOKEN (api_token)")
    check_port(settings.api_host, settings.api_port)
    lock = lock_data_dir(settings.data_dir)
    try:
        open_store(settings)
    except BaseException:
        lock.close()
        raise
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        token, token_file = resolve_api_token(settings)
    except BaseException:
        lock.close()
        raise
    if token_file is not None:
        why = "steps use host networking" if settings.network_mode == "host" else f"it binds {settings.api_host}"
        log.info("the API needs a token (%s): kept in %s, read by the local maoctl", why, token_file)
    settings = settings.model_copy(update={"api_token": token})
    app = create_app(settings)
    typer.echo(f"dashboard: {settings.api_url.rstrip('/')}/ui")
    try:
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=log_level.lower())
    finally:
        lock.close()
