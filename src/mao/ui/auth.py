"""Who may use the dashboard, and from where.

When the API needs a token, the dashboard needs it too: the login page takes it once and
sets an HttpOnly, SameSite=Strict cookie holding an HMAC of the token (never the token
itself, which never appears in a page either). Every POST must come from the dashboard's
own pages: its ``Origin`` (or, lacking one, its ``Referer``) must name this server.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import Request

from mao.errors import Forbidden
from mao.web.auth import token_matches

COOKIE = "mao_ui"
_CONTEXT = b"mao-ui-session-v1"


class LoginRequired(Exception):
    """The page needs the API token first; ``next_url`` is where to go after the login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def expected_token(request: Request) -> str | None:
    """The API's token, or None when the API (and so the dashboard) is open."""
    return request.app.state.instance.settings.api_token or None


def session_value(token: str) -> str:
    """What the cookie holds: a keyed hash of the token, useless anywhere but here."""
    return hmac.new(token.encode("utf-8", "surrogateescape"), _CONTEXT, hashlib.sha256).hexdigest()


def logged_in(request: Request) -> bool:
    token = expected_token(request)
    return token is None or token_matches(request.cookies.get(COOKIE, ""), session_value(token))


def require_login(request: Request) -> None:
    """A dependency of every dashboard page and action but the login page itself."""
    if not logged_in(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)


def safe_next(value: str | None) -> str:
    """Only a dashboard path: no open redirect to another site."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui"


def check_same_origin(request: Request) -> None:
    """Refuse a POST that another site's page made the browser send (CSRF)."""
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    host = request.headers.get("host", "")
    if not source or source == "null" or not host:
        raise Forbidden("dashboard actions must come from the dashboard's own pages (no Origin or Referer header)")
    if urlsplit(source).netloc.lower() != host.lower():
        raise Forbidden(f"dashboard actions must come from the dashboard's own pages, not from {source[:100]!r}")
