"""A local webhook receiver: http.server in a thread, recording what it was sent."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "hook-secret-for-tests"
"""The signing key the tests put in MAO_HOOK_SECRET."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def expected_signature(self, key: str = SECRET) -> str:
        """The signature as docs/gateway.md defines it, over the delivery id, the event and the body."""
        signed = f"{self.headers['x-mao-delivery']}\n{self.headers['x-mao-event']}\n".encode() + self.body
        return "sha256=" + hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()

    def signed(self, key: str = SECRET) -> bool:
        return hmac.compare_digest(self.headers.get("x-mao-signature", ""), self.expected_signature(key))


@dataclass
class Receiver:
    """``statuses``: the status of each next answer (then 200); ``hang``: seconds to wait before answering."""

    statuses: list[int] = field(default_factory=list)
    hang: float = 0.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.hang:
                    time.sleep(receiver.hang)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
