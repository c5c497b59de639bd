"""An instance's API served by a real uvicorn server in a thread (no background services)."""

from __future__ import annotations

import threading

import uvicorn

from mao.api.app import create_app
from mao.instance import Instance


class Served:
    """``instance``'s API on a loopback port (no background services)."""

    def __init__(self, instance: Instance, port: int) -> None:
        config = uvicorn.Config(
            create_app(instance=instance, background=False), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Served:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            self.thread.join(0.05)
        raise RuntimeError(f"the API server did not start on {self.url}")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
