"""Helpers of the security tests: the API served by uvicorn in a thread."""

from __future__ import annotations

import threading

import uvicorn

from mao.api.app import create_app
from mao.config import Settings


class ApiThread:
    """The orchestrator's API on ``settings.api_host:api_port``, in a thread of this process."""

    def __init__(self, settings: Settings, *, background: bool = False) -> None:
        config = uvicorn.Config(
            create_app(settings, background=background),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = f"http://127.0.0.1:{settings.api_port}"

    def __enter__(self) -> ApiThread:
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
