"""``maoctl serve``: run the orchestrator's API (and its scheduler) in this process."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer

from mao.config import load_settings
from mao.errors import InvalidInput


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind (default 127.0.0.1, MAO_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8080, MAO_API_PORT).")] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML config file (MAO_CONFIG).")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Data directory (MAO_DATA_DIR).")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Start the orchestrator: REST API, scheduler and executor, on the configured stores."""
    import uvicorn

    from mao.api.app import create_app

    settings = load_settings(config or ctx.find_root().obj.config, api_host=host, api_port=port, data_dir=data_dir)
    if not _is_loopback(settings.api_host) and not settings.api_token:
        raise InvalidInput(
            f"refusing to expose the API on {settings.api_host} without a token: set MAO_API_TOKEN "
            "(or api_token in the config file), or bind to 127.0.0.1"
        )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=log_level.lower())
