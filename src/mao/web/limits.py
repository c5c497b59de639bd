"""A bound on the size of request bodies, checked before an app reads them."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mao.errors import PayloadTooLarge

MAX_BODY_BYTES = 1024 * 1024
"""1 MiB: far above any valid request (a pipeline of 50 steps at their limits stays below it)."""


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` (by its Content-Length, or as it streams in)
    is a 413 with the one error body; the app never sees the request."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, exempt: tuple[str, ...] = ()) -> None:
        """``exempt``: path prefixes whose routes bound their bodies themselves."""
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt and str(scope.get("path", "")).startswith(self.exempt)):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length is not None and length.strip().isdigit():
            if int(length) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if b"transfer-encoding" not in headers:  # the server reads exactly that many bytes
                await self.app(scope, receive, send)
                return
        elif length is None and b"transfer-encoding" not in headers:  # no body at all (most GETs)
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(
            f"the request body is over {self.max_bytes} bytes; send less (see the size limits in the API document)",
            details={"limit_bytes": self.max_bytes},
        )
        await JSONResponse(error.to_dict(), status_code=error.status_code)(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
