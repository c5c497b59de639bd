"""Tokens: generated into files only their user may read, weak ones refused, and the
API token required exactly when steps can reach the API or it binds beyond loopback."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mao.config import Settings, load_settings
from mao.errors import InvalidInput
from mao.tokens import (
    API_TOKEN_FILE,
    EXECUTOR_TOKEN_FILE,
    check_token,
    ensure_token_file,
    resolve_api_token,
    resolve_executor_token,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_token_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "data" / API_TOKEN_FILE
    token = ensure_token_file(path)
    assert len(token) >= 40 and _mode(path) == 0o600
    assert ensure_token_file(path) == token
    path.chmod(0o644)  # made readable by someone: private again, same token
    assert ensure_token_file(path) == token and _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [API_TOKEN_FILE]  # no temporary file left


def test_an_empty_token_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / API_TOKEN_FILE
    path.write_text("\n")
    token = ensure_token_file(path)
    assert token and path.read_text().strip() == token and _mode(path) == 0o600


@pytest.mark.parametrize("token", [" ", "\t\n", "   "])
def test_blank_token_is_refused_anywhere(token: str) -> None:
    for public in (False, True):
        with pytest.raises(InvalidInput, match="MAO_API_TOKEN.*blank"):
            check_token(token, public=public, setting="MAO_API_TOKEN")


@pytest.mark.parametrize("token", ["x", "short", " fifteen-chars-x "])
def test_short_token_is_refused_on_a_public_bind_only(token: str) -> None:
    with pytest.raises(InvalidInput, match="at least 16 characters"):
        check_token(token, public=True, setting="MAO_API_TOKEN")
    assert check_token(token, public=False, setting="MAO_API_TOKEN") == token
    assert check_token("sixteen-chars-xx", public=True, setting="MAO_API_TOKEN") == "sixteen-chars-xx"


def test_blank_token_in_the_environment_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAO_API_TOKEN", "  ")
    with pytest.raises(InvalidInput, match="MAO_API_TOKEN.*blank"):
        load_settings()
    monkeypatch.setenv("MAO_API_TOKEN", "")
    assert load_settings().api_token is None


def test_steps_are_on_a_bridge_by_default(settings: Settings) -> None:
    assert Settings().network_mode == "bridge"
    assert settings.network_mode == "bridge"


@pytest.mark.parametrize(
    ("overrides", "required"),
    [
        ({}, False),
        ({"network_mode": "none"}, False),
        ({"network_mode": "host"}, True),
        ({"api_host": "0.0.0.0"}, True),
        ({"api_host": "::"}, True),
        ({"api_host": "localhost"}, False),
    ],
)
def test_api_token_generated_when_required(data_dir: Path, overrides: dict, required: bool) -> None:
    settings = Settings(instance_name="n", data_dir=data_dir, **overrides)
    token, path = resolve_api_token(settings)
    if required:
        assert path == data_dir / API_TOKEN_FILE and token == path.read_text().strip() and _mode(path) == 0o600
    else:
        assert (token, path) == (None, None) and not (data_dir / API_TOKEN_FILE).exists()


def test_configured_api_token_wins_and_is_checked(data_dir: Path) -> None:
    settings = Settings(instance_name="n", data_dir=data_dir, network_mode="host", api_token="configured-token-1")
    assert resolve_api_token(settings) == ("configured-token-1", None)
    assert not (data_dir / API_TOKEN_FILE).exists()
    weak = Settings(instance_name="n", data_dir=data_dir, api_host="0.0.0.0", api_token="weak")
    with pytest.raises(InvalidInput, match="at least 16"):
        resolve_api_token(weak)


def test_executor_token_configured_else_the_file(data_dir: Path) -> None:
    settings = Settings(instance_name="n", data_dir=data_dir)
    assert resolve_executor_token(settings) is None  # the client does not make one up
    generated = resolve_executor_token(settings, create=True)
    assert (data_dir / EXECUTOR_TOKEN_FILE).read_text().strip() == generated
    assert _mode(data_dir / EXECUTOR_TOKEN_FILE) == 0o600
    assert resolve_executor_token(settings) == generated  # what the orchestrator's RemoteExecutor sends
    configured = Settings(instance_name="n", data_dir=data_dir, executor_token="configured-executor-token")
    assert resolve_executor_token(configured) == "configured-executor-token"


def test_remote_executor_of_the_instance_sends_the_service_token(data_dir: Path) -> None:
    from mao.instance import Instance

    generated = resolve_executor_token(Settings(instance_name="n", data_dir=data_dir), create=True)
    instance = Instance(Settings(instance_name="n", data_dir=data_dir, executor_url="http://127.0.0.1:9"))
    try:
        assert instance.executor.client.headers["authorization"] == f"Bearer {generated}"
    finally:
        instance.close()
