"""Writes come from this server's own pages or from clients that are no browser.

A page on another site can make a browser send a "simple" request to any address, this
server's on loopback included: a form post, or a ``fetch`` without custom headers. Without a
token nothing else stops it. So a POST, PUT, PATCH or DELETE is refused

- with 403 when the browser says it comes from another site (``Sec-Fetch-Site: cross-site``,
  or ``same-site`` without this server's ``Origin``) or names another origin: an ``Origin``
  other than the one the request was sent to or the ``public_url``'s, ``null`` included;
- with 415 when its body is declared as anything but JSON (a form, ``text/plain``: what a
  page may send without asking the server first).

Clients that are no browser (maoctl, curl, scripts, the gateway's tools) send no ``Origin``
and are not affected; nor is a request without ``Content-Type`` (a POST without a body).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mao.errors import Forbidden, MAOError, UnsupportedMediaType
from mao.web.hosts import header, policy_of

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<something>+json``, parameters aside."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix.rstrip("/") or path.startswith(prefix) for prefix in prefixes)


class CrossSiteGuard:
    """ASGI middleware (see the module's text). Paths under ``own_checks`` are left to their
    app's own checks (the dashboard's forms); bodies under ``any_body`` may have any type (the
    gateway's records, whose clients hold a token a browser would not send)."""

    def __init__(self, app: ASGIApp, *, own_checks: Iterable[str] = (), any_body: Iterable[str] = ()) -> None:
        self.app = app
        self.own_checks = tuple(own_checks)
        self.any_body = tuple(any_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING or _under(scope["path"], self.own_checks):
            await self.app(scope, receive, send)
            return
        error = self._refusal(scope)
        if error is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse(error.to_dict(), status_code=error.status_code)(scope, receive, send)

    def _refusal(self, scope: Scope) -> MAOError | None:
        site = (header(scope, b"sec-fetch-site") or "").strip().lower()
        origin = header(scope, b"origin")
        own = origin is not None and policy_of(scope).is_own_origin(origin, header(scope, b"host") or "")
        if site == "cross-site" or (site == "same-site" and not own):
            return Forbidden(
                f"this API takes no {scope['method']} from another site's page (Sec-Fetch-Site: {site}): "
                "use maoctl, curl or the dashboard"
            )
        if origin is not None and not own:
            return Forbidden(
                f"this API takes no {scope['method']} from another site's page (Origin {origin[:100]!r}): "
                "use maoctl, curl or the dashboard"
            )
        content_type = header(scope, b"content-type")
        if content_type is not None and not is_json(content_type) and not _under(scope["path"], self.any_body):
            shown = content_type.split(";", 1)[0].strip()[:100]
            return UnsupportedMediaType(
                f"the request body must be JSON sent with 'Content-Type: application/json' (this request's is "
                f"{shown!r}; curl: -H 'content-type: application/json'): the API takes no forms or plain text",
                details={"content_type": shown},
            )
        return None
