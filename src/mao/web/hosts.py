"""The names a server answers to: a ``Host`` allowlist against DNS rebinding.

A page on another site cannot read this server's answers, unless its own name is made to
resolve to this server's address (DNS rebinding): the browser then sends that name as
``Host``, and takes the server for the page's own. So a request whose ``Host`` is not one
of the server's names is a 400 before any route sees it.

Always allowed: ``localhost``, every loopback address (127.0.0.0/8, ``[::1]``), ``0.0.0.0`` and
``[::]`` (which reach this machine's own servers), the address
the server is bound to (a wildcard 0.0.0.0 or :: adds only itself, as an address: none of
the machine's other names), and the host of its public URL; beyond them the names the operator lists (``allowed_hosts``): exact names or addresses,
``*.example.org`` for its subdomains, or ``*`` for any. Ports do not count. A request
without ``Host`` (HTTP/1.0; no browser sends one) is not a browser's and passes.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mao.errors import InvalidHost

log = logging.getLogger(__name__)

WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
"""Bind addresses that stand for every address of the machine: no name of their own."""

STATE_KEY = "host_policy"
"""The attribute of ``app.state`` that holds the app's :class:`HostPolicy`."""


def split_host(value: str) -> tuple[str, int | None]:
    """A ``Host`` header's (or a URL's netloc) host, lower case and without brackets, and its port."""
    value = value.strip().lower()
    port = ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host = value
    return host, int(port) if port.isdigit() and len(port) <= 5 else None


def _address(host_port: tuple[str, int | None], scheme: str | None = None) -> tuple[str, int | None]:
    """The pair with a default port (80, 443) left out, so that ``x`` and ``x:80`` compare equal."""
    host, port = host_port
    if (port == 80 and scheme in (None, "http")) or (port == 443 and scheme in (None, "https")):
        port = None
    return host, port


def origin_address(origin: str) -> tuple[str, int | None] | None:
    """The host and port of an ``Origin`` (``scheme://host[:port]``); None when it is none (``null``)."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return _address(split_host(parts.netloc.rpartition("@")[2]), parts.scheme)


@dataclass(frozen=True)
class HostPolicy:
    """The names a server answers to, and the origin of its public URL (see the module's text)."""

    names: frozenset[str] = frozenset({"localhost"})
    suffixes: tuple[str, ...] = ()
    any_host: bool = False
    public_origin: str | None = None
    """``scheme://host[:port]`` of the public URL: pages served there are this server's own."""

    @classmethod
    def of(cls, *, bind: str | None = None, public_url: str | None = None, allowed: Iterable[str] = ()) -> HostPolicy:
        """The policy of a server bound to ``bind``, reached at ``public_url``, with the operator's
        ``allowed`` names (as ``Settings.allowed_hosts`` keeps them: lower case, no brackets)."""
        names = {"localhost"}
        suffixes: list[str] = []
        any_host = False
        if bind is not None and bind.strip():  # a wildcard (0.0.0.0) too: an address no DNS rebinds to
            names.add(bind.strip().lower().strip("[]"))
        public_origin = None
        if public_url:
            parts = urlsplit(public_url)
            if parts.hostname:
                names.add(parts.hostname.lower())
                public_origin = f"{parts.scheme.lower()}://{parts.netloc.lower().rpartition('@')[2]}"
        for entry in allowed:
            if entry == "*":
                any_host = True
            elif entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes), any_host, public_origin)

    def allows(self, host_header: str) -> bool:
        """Whether a request with this ``Host`` header is for one of the server's names."""
        if self.any_host or not host_header:
            return True
        host = split_host(host_header)[0]
        if host in self.names or any(host.endswith(suffix) for suffix in self.suffixes):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        # 0.0.0.0 and :: reach this machine's own servers (the seed's http://0.0.0.0:8080);
        # like a loopback address, no DNS answer can make a page's name one of them
        return address.is_loopback or address.is_unspecified

    def is_own_origin(self, origin: str, host_header: str) -> bool:
        """Whether ``origin`` (an ``Origin`` header) is this server's: the one the request was
        sent to (its ``Host``), or the public URL's. Schemes do not count: a proxy in front may
        take HTTPS and forward HTTP."""
        address = origin_address(origin)
        if address is None:
            return False
        if self.public_origin is not None and address == origin_address(self.public_origin):
            return True
        return bool(host_header) and address == _address(split_host(host_header))


LOOPBACK_ONLY = HostPolicy()


def policy_of(scope: Scope) -> HostPolicy:
    """The policy of the app serving ``scope`` (loopback only until the app set one)."""
    app = scope.get("app")
    state = getattr(app, "state", None)
    return getattr(state, STATE_KEY, None) or LOOPBACK_ONLY


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first one), decoded as Latin-1 like Starlette does."""
    key: bytes
    value: bytes
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


class TrustedHosts:
    """ASGI middleware: a request whose ``Host`` the app's :class:`HostPolicy` does not allow is
    a 400 with the one error body, and the app never sees it (Starlette's TrustedHostMiddleware,
    with the project's error body and a policy the app sets once it knows its settings)."""

    MAX_LOGGED = 256

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._logged: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = header(scope, b"host") or ""
        if policy_of(scope).allows(host):
            await self.app(scope, receive, send)
            return
        shown = host[:100]
        if shown not in self._logged and len(self._logged) < self.MAX_LOGGED:
            self._logged.add(shown)
            log.warning(
                "refused a request for the name %r (its Host header): add it to allowed_hosts if it is one", shown
            )
        error = InvalidHost(
            f"this server does not answer to the name {shown!r} (the request's Host header): "
            "if it is one of its names, add it to allowed_hosts (MAO_ALLOWED_HOSTS)",
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid host"})
            return
        await JSONResponse(error.to_dict(), status_code=error.status_code)(scope, receive, send)
