"""The local maoctl finds the token `maoctl serve` generated, and never sends it elsewhere."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mao.cli.state import State
from mao.config import Settings
from mao.tokens import API_TOKEN_FILE, ensure_token_file


@pytest.fixture
def generated(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MAO_DATA_DIR", str(data_dir))
    return ensure_token_file(data_dir / API_TOKEN_FILE)


def test_flag_or_environment_first(generated: str) -> None:
    assert State(token="given-token").api_token() == "given-token"
    assert State(token="").api_token() == generated  # an empty MAO_API_TOKEN is no token


def test_blank_flag_is_an_error(generated: str) -> None:
    from mao.errors import InvalidInput

    with pytest.raises(InvalidInput, match="blank"):
        State(token="   ").api_token()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9000", "http://[::1]:8080"])
def test_the_generated_token_for_a_local_orchestrator(generated: str, url: str) -> None:
    assert State(url=url).api_token() == generated


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080", "https://mao.example.org"])
def test_never_sent_to_another_host(generated: str, url: str) -> None:
    assert State(url=url).api_token() is None


def test_config_file_token_before_the_file(generated: str, tmp_path: Path) -> None:
    config = tmp_path / "mao.yaml"
    config.write_text("api_token: from-the-config-file\n")
    assert State(config=str(config)).api_token() == "from-the-config-file"


def test_maoctl_against_a_host_networking_instance(
    maoctl, data_dir: Path, free_port, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `maoctl serve` does with network_mode host: a generated token, required."""
    from served_kit import Served

    from mao.tokens import resolve_api_token

    settings = Settings(instance_name="sec-node", data_dir=data_dir, api_port=free_port(), network_mode="host")
    token, path = resolve_api_token(settings)
    assert path == data_dir / API_TOKEN_FILE
    with Served.api(settings.model_copy(update={"api_token": token})) as server:
        assert httpx.get(server.url + "/registry/tools").status_code == 401
        monkeypatch.setenv("MAO_DATA_DIR", str(data_dir))
        result = maoctl("--url", server.url, "tool", "add", "--name", "t", "--image", "busybox")
        assert result.code == 0, result.err
        monkeypatch.setenv("MAO_DATA_DIR", str(data_dir / "elsewhere"))  # another data dir: no token found
        result = maoctl("--url", server.url, "tool", "get")
        assert result.code == 1 and "token" in result.err
