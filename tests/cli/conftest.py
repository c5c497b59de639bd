from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from mao.api.app import create_app
from mao.cli.main import main
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


def _settings(tmp_path_factory, free_port, **overrides) -> Settings:
    # explicit values: they beat whatever MAO_* the developer's shell exports
    values = {
        "instance_name": "cli-node",
        "data_dir": tmp_path_factory.mktemp("cli-data"),
        "api_port": free_port(),
        "api_token": None,
        "store_url": None,
        "registry_backend": "local",
    }
    return Settings(**(values | overrides))


@pytest.fixture(scope="module")
def server(tmp_path_factory, free_port) -> Iterator[ServerThread]:
    with ServerThread(_settings(tmp_path_factory, free_port)) as srv:
        yield srv


@pytest.fixture(scope="module")
def token_server(tmp_path_factory, free_port) -> Iterator[ServerThread]:
    with ServerThread(_settings(tmp_path_factory, free_port, api_token="cli-s3cret")) as srv:
        yield srv


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


@pytest.fixture
def maoctl(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``maoctl ARGS...`` in this process through the real entry point."""
    from mao.cli import output

    monkeypatch.setattr(output.console, "_width", 160)  # wide tables: names are not folded

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli(maoctl, server: ServerThread):
    """``maoctl --url <test server> ARGS...``."""

    def run(*args: str) -> Result:
        return maoctl("--url", server.url, *args)

    return run
