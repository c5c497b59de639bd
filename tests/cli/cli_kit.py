"""A real uvicorn server for the API, in a thread, for the CLI tests."""

from __future__ import annotations

import threading

import uvicorn

from mao.api.app import create_app
from mao.config import Settings


class ServerThread:
    """A real uvicorn server for the API, in a thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(
            create_app(settings, background=False), host="127.0.0.1", port=settings.api_port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = f"http://127.0.0.1:{settings.api_port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            self.thread.join(0.05)
        raise RuntimeError(f"the API server did not start on {self.url}")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
