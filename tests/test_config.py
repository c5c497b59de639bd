"""Settings: YAML config file, MAO_* environment, overrides; nothing connects at import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mao.config import Settings, load_settings
from mao.errors import InvalidInput


def write(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert (s.api_host, s.api_port, s.api_token) == ("127.0.0.1", 8080, None)
    assert s.registry_backend == "local"
    assert s.etcd_endpoints == ["http://127.0.0.1:2379"]
    assert s.registry_prefix == "/mao/"
    assert s.database_url == f"sqlite:///{tmp_path / 'mao.db'}"
    assert s.api_url == "http://127.0.0.1:8080"
    assert s.instance_name.startswith("mao-")


def test_yaml_file(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "mao.yaml",
        f"""
        instance_name: node-a
        data_dir: {tmp_path / "data"}
        api_port: 9000
        api_token: from-file
        registry_backend: etcd
        etcd_endpoints:
          - http://10.0.0.1:2379
          - http://10.0.0.2:2379/
        store_url: postgresql://mao@db:5432/mao
        registry_prefix: fed
        unknown_key: ignored
        """,
    )
    s = load_settings(cfg)
    assert s.instance_name == "node-a"
    assert s.data_dir == tmp_path / "data"
    assert (s.api_port, s.api_token, s.registry_backend) == (9000, "from-file", "etcd")
    assert s.etcd_endpoints == ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    assert s.database_url == "postgresql://mao@db:5432/mao"
    assert s.registry_prefix == "/fed/"


def test_environment_beats_file_and_overrides_beat_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(
        tmp_path / "mao.yaml",
        """
        instance_name: from-file
        api_port: 9000
        git_email: file@example.org
        etcd_endpoints: [http://10.0.0.1:2379]
        """,
    )
    monkeypatch.setenv("MAO_API_PORT", "9100")
    monkeypatch.setenv("MAO_INSTANCE_NAME", "from-env")
    monkeypatch.setenv("MAO_ETCD_ENDPOINTS", "http://127.0.0.1:23791, http://127.0.0.1:23792,http://127.0.0.1:23793")
    s = load_settings(cfg)
    assert s.api_port == 9100
    assert s.instance_name == "from-env"
    assert s.git_email == "file@example.org"  # not in the environment: the file's value
    assert s.etcd_endpoints == ["http://127.0.0.1:23791", "http://127.0.0.1:23792", "http://127.0.0.1:23793"]

    s = load_settings(cfg, api_port=9200, instance_name=None)  # None means "not given"
    assert (s.api_port, s.instance_name) == (9200, "from-env")


def test_mao_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path / "c.yaml", "api_port: 9300\n")
    monkeypatch.setenv("MAO_CONFIG", str(cfg))
    assert load_settings().api_port == 9300


def test_settings_class_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAO_REGISTRY_BACKEND", "etcd")
    monkeypatch.setenv("MAO_ETCD_ENDPOINTS", "http://127.0.0.1:1")
    s = Settings()
    assert s.registry_backend == "etcd" and s.etcd_endpoints == ["http://127.0.0.1:1"]


def test_empty_config_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path / "empty.yaml", "")).api_port == 8080


def test_data_dir_expands_the_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings(data_dir="~/mao").data_dir == tmp_path / "mao"


def test_api_url(tmp_path: Path) -> None:
    assert load_settings(data_dir=tmp_path, api_host="0.0.0.0", api_port=8081).api_url == "http://127.0.0.1:8081"
    assert load_settings(data_dir=tmp_path, public_url="https://mao.example.org").api_url == "https://mao.example.org"


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("MAO_ETCD_ENDPOINTS", ""),
        ("MAO_ETCD_ENDPOINTS", "127.0.0.1:2379"),
        ("MAO_ETCD_ENDPOINTS", "http://127.0.0.1:2379,ftp://x:1"),
        ("MAO_API_PORT", "eighty"),
        ("MAO_API_PORT", "70000"),
        ("MAO_REGISTRY_BACKEND", "zookeeper"),
        ("MAO_INSTANCE_NAME", "bad name"),
        ("MAO_INSTANCE_NAME", "../x"),
        ("MAO_REGISTRY_TIMEOUT", "0"),
    ],
)
def test_invalid_environment_is_invalid_input(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(InvalidInput) as info:
        load_settings()
    assert env.removeprefix("MAO_").lower() in info.value.message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize("body", ["a: [\n", "api_port: [1, 2]\n", "- just\n- a list\n"])
def test_bad_config_file_is_invalid_input(tmp_path: Path, body: str) -> None:
    with pytest.raises(InvalidInput):
        load_settings(write(tmp_path / "bad.yaml", body))


def test_nothing_connects_or_writes_at_import(tmp_path: Path) -> None:
    """Importing every entry point and building the app (without starting it) makes no
    connection and creates no file, even with unreachable services configured."""
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    code = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise AssertionError(f"network connection at import time: {args!r}")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse

        import mao.config, mao.store, mao.registry, mao.registry.local, mao.registry.etcd
        import mao.registry.memory, mao.catalog, mao.api.app, mao.cli.main
        from mao.api.app import create_app
        from mao.config import load_settings

        settings = load_settings()
        assert settings.registry_backend == "etcd", settings
        create_app(settings)
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_")} | {
        "HOME": str(home),
        "MAO_DATA_DIR": str(data),
        "MAO_STORE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "MAO_REGISTRY_BACKEND": "etcd",
        "MAO_ETCD_ENDPOINTS": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert not data.exists()
    assert list(home.iterdir()) == []
