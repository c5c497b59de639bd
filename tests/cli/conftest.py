from __future__ import annotations

from collections.abc import Iterator

import pytest
from remotes_kit import allowed_remote_roots
from served_kit import Served

from mao.config import Settings


def _settings(tmp_path_factory, free_port, **overrides) -> Settings:
    # explicit values: they beat whatever MAO_* the developer's shell exports
    values = {
        "instance_name": "cli-node",
        "data_dir": tmp_path_factory.mktemp("cli-data"),
        "api_port": free_port(),
        "api_token": None,
        "store_url": None,
        "registry_backend": "local",
        "local_remote_roots": allowed_remote_roots(tmp_path_factory),
    }
    return Settings(**(values | overrides))


@pytest.fixture(scope="module")
def server(tmp_path_factory, free_port) -> Iterator[Served]:
    with Served.api(_settings(tmp_path_factory, free_port)) as srv:
        yield srv


@pytest.fixture(scope="module")
def token_server(tmp_path_factory, free_port) -> Iterator[Served]:
    with Served.api(_settings(tmp_path_factory, free_port, api_token="cli-s3cret")) as srv:
        yield srv


from maoctl_kit import Result  # noqa: E402


@pytest.fixture
def cli(maoctl, server: Served):
    """``maoctl --url <test server> ARGS...``."""

    def run(*args: str) -> Result:
        return maoctl("--url", server.url, *args)

    return run
