"""An instance's etcd credentials in its settings: both or neither, the password a secret."""

from __future__ import annotations

import pytest

from mao.config import Settings, load_settings
from mao.errors import InvalidInput
from mao.registry import make_registry
from mao.registry.etcd_auth import AuthSession
from mao.store import Store, make_engine


def test_a_user_without_a_password_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MAO_ETCD_USER", "mao-a")
    monkeypatch.delenv("MAO_ETCD_PASSWORD", raising=False)
    with pytest.raises(InvalidInput, match="etcd_user .* and etcd_password .* together"):
        load_settings(None, data_dir=str(tmp_path))


def test_the_password_is_never_shown_and_reaches_the_sessions(tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        registry_backend="etcd",
        etcd_endpoints=["http://127.0.0.1:1", "http://127.0.0.1:2"],
        etcd_user="mao-a",
        etcd_password="s3cret-pw",
    )
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in settings.model_dump_json()
    store = Store(make_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    registry = make_registry(settings, store)
    try:
        sessions = [client.session for client in registry.clients]  # type: ignore[attr-defined]
        assert all(isinstance(s, AuthSession) and s.user == "mao-a" for s in sessions)
        assert "s3cret-pw" not in repr(sessions[0].credentials)
        assert sessions[0] is not sessions[1]  # one token per member
    finally:
        registry.close()
        store.close()
