"""Who may use the dashboard, and from where.

When the API needs a token, the dashboard needs it too: the login page takes it once and
opens a session: a random id (``secrets.token_urlsafe``) in an HttpOnly, SameSite=Strict
cookie, kept in this process's memory with its expiry (``ui_session_max_age`` after the
login, or ``ui_session_idle`` after its last request) and ended by the logout. The token
itself is never in the cookie nor in a page. A restart ends every session. Wrong tokens at
the login are throttled per client as wrong Bearer tokens are (:mod:`mao.web.throttle`).

Every POST must come from the dashboard's own pages: its ``Origin`` (or, lacking one, its
``Referer``) must name this server, and a browser's ``Sec-Fetch-Site`` must not say another site.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from mao.errors import Forbidden

COOKIE = "mao_ui"

MAX_SESSIONS = 1000
"""Sessions kept at most; beyond, the oldest login ends first."""


class LoginRequired(Exception):
    """The page needs the API token first; ``next_url`` is where to go after the login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


@dataclass
class _Session:
    expires: float
    idle: float
    seen: float


class Sessions:
    """The dashboard's logins, in memory. Thread-safe."""

    def __init__(self, *, max_sessions: int = MAX_SESSIONS, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sessions = max_sessions
        self.clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, *, max_age: float, idle: float) -> str:
        """A new session's id, valid ``max_age`` seconds at most and ``idle`` after each use."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            now = self.clock()
            for old in [i for i, s in self._sessions.items() if not self._live(s, now)]:
                del self._sessions[old]
            while len(self._sessions) >= self.max_sessions:
                self._sessions.popitem(last=False)
            self._sessions[session_id] = _Session(expires=now + max_age, idle=idle, seen=now)
        return session_id

    @staticmethod
    def _live(session: _Session, now: float) -> bool:
        return now < session.expires and now < session.seen + session.idle

    def valid(self, session_id: str) -> bool:
        """Whether ``session_id`` is a live session; using it keeps it from idling out."""
        if not session_id:
            return False
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return False
            now = self.clock()
            if not self._live(session, now):
                del self._sessions[session_id]
                return False
            session.seen = now
            return True

    def close(self, session_id: str) -> None:
        """End a session (the logout): its id is refused from now on."""
        with self._lock:
            self._sessions.pop(session_id, None)


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.ui_sessions
    return sessions


def expected_token(request: Request) -> str | None:
    """The API's token, or None when the API (and so the dashboard) is open."""
    return request.app.state.instance.settings.api_token or None


def logged_in(request: Request) -> bool:
    return expected_token(request) is None or sessions_of(request).valid(request.cookies.get(COOKIE, ""))


def open_session(request: Request) -> str:
    """A new session for a request that gave the right token; its id goes into the cookie."""
    settings = request.app.state.instance.settings
    return sessions_of(request).open(max_age=settings.ui_session_max_age, idle=settings.ui_session_idle)


def close_session(request: Request) -> None:
    sessions_of(request).close(request.cookies.get(COOKIE, ""))


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
    site = request.headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        raise Forbidden(f"dashboard actions must come from the dashboard's own pages (Sec-Fetch-Site: {site})")
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    host = request.headers.get("host", "")
    if not source or source == "null" or not host:
        raise Forbidden("dashboard actions must come from the dashboard's own pages (no Origin or Referer header)")
    if urlsplit(source).netloc.lower() != host.lower():
        raise Forbidden(f"dashboard actions must come from the dashboard's own pages, not from {source[:100]!r}")
