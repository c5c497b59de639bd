"""``maoctl marketplace``: browse a marketplace catalogue, or host a private one over HTTP."""

from __future__ import annotations

import json as jsonlib
import signal
import sys
import threading
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import typer
from rich.markup import escape

from mao.cli import output
from mao.cli.output import err_console
from mao.cli.state import JsonOpt, State, state
from mao.config import load_settings
from mao.errors import error_body
from mao.marketplace import KINDS, Marketplace, MarketplaceError

marketplace_app = typer.Typer(
    help="Browse the MAO marketplace (federations, tools, pipelines) or host a private catalogue.",
    no_args_is_help=True,
)

MarketplaceUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--marketplace-url",
        envvar="MAO_MARKETPLACE_URL",
        show_default=False,
        help="Catalogue base: http(s):// or file:// URL, a directory, or 'builtin' (the sample shipped with maoctl). "
        "Default: marketplace_url from the config file.",
    ),
]


class Kind(StrEnum):
    federations = "federations"
    tools = "tools"
    pipelines = "pipelines"


def marketplace_url(st: State, override: str | None) -> str:
    """The marketplace to use: the option (or MAO_MARKETPLACE_URL), else the configured one."""
    if override and override.strip():
        return override.strip()
    return load_settings(st.config).marketplace_url


def open_marketplace(st: State, override: str | None) -> Marketplace:
    return Marketplace(marketplace_url(st, override))


def _cells(*values: Any) -> list[str]:
    """Table cells with rich markup escaped: catalogue text is shown as written."""
    return [escape("" if v is None else str(v)) for v in values]


@marketplace_app.command("list")
def marketplace_list(
    ctx: typer.Context,
    kind: Annotated[Kind, typer.Argument(help="What to list.", case_sensitive=False)],
    url: MarketplaceUrlOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the federations, tools or pipelines a marketplace offers."""
    st = state(ctx, json)
    with open_marketplace(st, url) as market:
        if kind is Kind.federations:
            federations = market.federations()
            if st.json:
                output.print_json([f.model_dump(exclude_none=True) for f in federations])
                return
            output.table(
                "Federations",
                ["name", "operator", "contact", "etcd peers", "description"],
                (_cells(f.name, f.operator, f.contact, f.etcd_peer_hint, f.description) for f in federations),
            )
        elif kind is Kind.tools:
            tools = market.tools()
            if st.json:
                output.print_json([t.model_dump() for t in tools])
                return
            output.table(
                "Tools",
                ["name", "image", "author", "artefact", "description"],
                (_cells(t.name, t.image, t.author, t.artefact, t.description) for t in tools),
            )
        else:
            pipelines = market.pipelines()
            if st.json:
                output.print_json([p.definition() for p in pipelines])
                return
            output.table(
                "Pipelines",
                ["name", "steps", "tools", "datasets", "private variables", "description"],
                (
                    _cells(
                        p.name,
                        " → ".join(s.name for s in p.steps),
                        ", ".join(p.tools()),
                        ", ".join(p.datasets()),
                        ", ".join(p.placeholders()),
                        p.description,
                    )
                    for p in pipelines
                ),
            )


def _handler(directory: Path, quiet: bool) -> type[BaseHTTPRequestHandler]:
    files = {f"{kind}.json" for kind in KINDS}

    class CatalogueHandler(BaseHTTPRequestHandler):
        server_version = "mao-marketplace"
        sys_version = ""

        def do_GET(self) -> None:
            self._serve(with_body=True)

        def do_HEAD(self) -> None:
            self._serve(with_body=False)

        def _serve(self, with_body: bool) -> None:
            name = urlparse(self.path).path.strip("/")
            if name == "":
                self._send(HTTPStatus.OK, jsonlib.dumps({k: f"{k}.json" for k in KINDS}).encode(), with_body)
                return
            if name not in files:
                body = error_body("not_found", f"no {name!r} here; try {', '.join(sorted(files))}")
                self._send(HTTPStatus.NOT_FOUND, jsonlib.dumps(body).encode(), with_body)
                return
            try:
                data = (directory / name).read_bytes()
            except OSError as exc:
                body = error_body("unavailable", f"cannot read {name}: {exc.strerror}")
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, jsonlib.dumps(body).encode(), with_body)
                return
            self._send(HTTPStatus.OK, data, with_body)

        def _send(self, status: HTTPStatus, data: bytes, with_body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                err_console.print(escape(f"{self.address_string()} {format % args}"), highlight=False)

    return CatalogueHandler


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@marketplace_app.command("serve")
def marketplace_serve(
    directory: Annotated[
        Path, typer.Argument(help="Directory holding federations.json, tools.json and pipelines.json.")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8090,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not log requests.")] = False,
) -> None:
    """Host a private marketplace catalogue over HTTP (for `--marketplace-url http://HOST:PORT`)."""
    directory = directory.expanduser().absolute()
    if not directory.is_dir():
        raise MarketplaceError(
            f"{directory} is not a directory; give the folder holding {', '.join(f'{k}.json' for k in KINDS)}"
        )
    missing = [f"{k}.json" for k in KINDS if not (directory / f"{k}.json").is_file()]
    if missing:
        raise MarketplaceError(
            f"{directory} has no {', '.join(missing)}; a catalogue needs {', '.join(f'{k}.json' for k in KINDS)}"
        )
    with Marketplace(str(directory)) as market:
        counts = market.check()
    try:
        server = ThreadingHTTPServer((host, port), _handler(directory, quiet))
    except OSError as exc:
        raise MarketplaceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound_host, bound_port = server.server_address[:2]
    host_text = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
    shown_host = f"[{host_text}]" if ":" in host_text else host_text
    url = f"http://{shown_host}:{bound_port}"
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    print(f"Serving the marketplace catalogue in {directory} ({summary}) at {url}", flush=True)
    print(f"Use it with: maoctl instance init --marketplace-url {url}   (Ctrl+C stops)", flush=True)
    sys.stdout.flush()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("Stopped.")
