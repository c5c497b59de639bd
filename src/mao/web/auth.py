"""The one bearer-token check, shared by the orchestrator API and the executor service;
wrong tokens are throttled per client (:mod:`mao.web.throttle`)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request

from mao.errors import Unauthorized
from mao.web.throttle import client_of, throttle_of


def given_token(request: Request) -> str:
    """The token a request carries: ``Authorization: Bearer <token>`` or ``X-MAO-Token``."""
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return request.headers.get("x-mao-token", "").strip()


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison on bytes, so any header value (non-ASCII too) is just a wrong token."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


def verify_token(request: Request, given: str, expected: str) -> bool:
    """Whether ``given`` is ``expected``, the app's throttle (``app.state.auth_throttle``) kept:
    RateLimited when the client sent too many wrong tokens lately; a wrong one is counted
    (an empty one is not: it is no guess)."""
    throttle = throttle_of(request)
    client = client_of(request)
    if given and throttle is not None:
        throttle.check(client)
    if token_matches(given, expected):
        return True
    if given and throttle is not None:
        throttle.failed(client)
    return False


def token_checker(expected: Callable[[Request], str | None], hint: str) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that refuses requests without the token ``expected(request)``
    (no check when it returns None). ``hint`` tells the client how to get the token; wrong
    tokens are throttled per client (:func:`verify_token`).
    It is ``async``: it reads headers only, so it costs a request no worker thread."""

    async def require_token(request: Request) -> None:
        token = expected(request)
        if token is None:
            return
        if not verify_token(request, given_token(request), token):
            raise Unauthorized(f"this API needs a token: send 'Authorization: Bearer <token>' ({hint})")

    return require_token
