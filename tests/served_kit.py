"""An ASGI app served by a real uvicorn server in a thread of this process.

The one in-thread server of the tests: the orchestrator's API (``Served.api``) or any other
app (the executor service, say), on a chosen or an ephemeral loopback port. Startup waits
until uvicorn is listening (a lifespan that fails is an error, not a server without one);
shutdown asks uvicorn to exit and joins its thread.
"""

from __future__ import annotations

import threading
from typing import Any

import uvicorn
from waiting import wait_for

from mao.api.app import create_app
from mao.config import Settings
from mao.instance import Instance


class Served:
    """``app`` on ``host:port`` in a thread; ``port=0`` takes a free one, known once started.

    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        app: Any,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        name: str = "uvicorn",
        startup_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        # lifespan "on": an app whose startup raises stops the server instead of serving without it
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    @classmethod
    def api(
        cls,
        settings: Settings | None = None,
        *,
        instance: Instance | None = None,
        background: bool = False,
        port: int | None = None,
        **kwargs: Any,
    ) -> Served:
        """The orchestrator's API for ``instance`` (kept open after) or built from ``settings``
        (closed with the server), on ``port`` or else the settings' ``api_host:api_port``."""
        if settings is None:
            if instance is None:
                raise ValueError("Served.api needs settings or an instance")
            settings = instance.settings
        app = create_app(settings, instance=instance, background=background)
        kwargs.setdefault("host", settings.api_host)
        return cls(app, settings.api_port if port is None else port, **kwargs)

    @property
    def url(self) -> str:
        """The base URL a client on this machine reaches the server at."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Served:
        self.thread.start()
        wait_for(
            lambda: self.server.started or not self.thread.is_alive(),
            self.startup_timeout,
            f"the server to listen on {self.host}:{self.port}",
            interval=0.02,
        )
        if not self.server.started:
            raise RuntimeError(f"the server did not start on {self.host}:{self.port} (see its log above)")
        if self.port == 0:
            self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(self.stop_timeout)
        if self.thread.is_alive():  # a request still open (a stream, a long poll): cut it
            self.server.force_exit = True
            self.thread.join(self.stop_timeout)
        assert not self.thread.is_alive(), f"the server on {self.url} did not stop"

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
