"""Private variables are encrypted at rest (Fernet, keys in a file outside the database), on
SQLite and PostgreSQL: raw rows never hold a value, plain-text rows of an older store are
encrypted at the next start, the key can be rotated, and a missing or wrong key is one error
saying what to do, never a silent loss."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from mao.errors import StoreError
from mao.store import Store, make_engine
from mao.store.secrets import PREFIX, Cipher, SecretKeys, is_sealed


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "secrets.key"


@pytest.fixture
def vault(store_url: str, key_file: Path) -> Iterator[Store]:
    """A set-up store with a key file."""
    store = Store(make_engine(store_url), SecretKeys(key_file))
    store.setup()
    yield store
    store.close()


def _raw(store: Store) -> dict[tuple[str, str], str]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT pipeline, name, value FROM private_variables")).all()
    return {(pipeline, name): value for pipeline, name, value in rows}


def _insert_plain(store: Store, pipeline: str, name: str, value: str) -> None:
    """A row as a version before encryption at rest wrote it."""
    with store.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO private_variables (pipeline, name, value) VALUES (:p, :n, :v)"),
            {"p": pipeline, "n": name, "v": value},
        )


def test_a_stored_value_is_encrypted_and_reads_back(vault: Store, key_file: Path) -> None:
    vault.set_private_variable("hub", "TOKEN", "s3cret-value")
    vault.set_private_variable("hub", "USER", "me")
    raw = _raw(vault)
    assert all(is_sealed(value) for value in raw.values())
    assert not any("s3cret-value" in value for value in raw.values())
    assert vault.private_variables("hub") == {"TOKEN": "s3cret-value", "USER": "me"}
    assert vault.private_variable_names("hub") == ["TOKEN", "USER"]
    assert Cipher(SecretKeys(key_file).read()).open(raw["hub", "TOKEN"]) == "s3cret-value"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_plain_text_rows_of_an_older_store_are_encrypted_at_the_next_start(store_url: str, key_file: Path) -> None:
    old = Store(make_engine(store_url))  # no key: a store as an older version left it
    old.migrate()
    _insert_plain(old, "hub", "TOKEN", "plain-s3cret")
    _insert_plain(old, "hub", "ODD", "fernet:not-a-token")  # looks like a prefix, is a value
    old.close()

    store = Store(make_engine(store_url), SecretKeys(key_file))
    try:
        store.setup()  # what every start does
        raw = _raw(store)
        assert all(is_sealed(value) for value in raw.values())
        assert "plain-s3cret" not in str(raw)
        assert store.private_variables("hub") == {"TOKEN": "plain-s3cret", "ODD": "fernet:not-a-token"}
        assert store.seal_private_variables() == 0  # idempotent
        assert _raw(store) == raw
    finally:
        store.close()


def test_rotation_encrypts_every_value_again_with_a_new_key(vault: Store, key_file: Path) -> None:
    _insert_plain(vault, "old", "LEFT", "still-plain")  # rotation encrypts it too
    vault.set_private_variable("hub", "TOKEN", "s3cret-value")
    before, old_keys = _raw(vault), SecretKeys(key_file).read()

    done = vault.rotate_secrets_key()
    after, new_keys = _raw(vault), SecretKeys(key_file).read()
    assert (done.resealed, done.dropped, done.kept_old) == (2, [], 0)
    assert after["hub", "TOKEN"] != before["hub", "TOKEN"] and all(is_sealed(v) for v in after.values())
    assert len(new_keys) == 1 and new_keys[0] not in old_keys
    assert not Cipher(old_keys).opens(after["hub", "TOKEN"])  # the old key is gone for good
    assert vault.private_variables("hub") == {"TOKEN": "s3cret-value"}
    assert vault.private_variables("old") == {"LEFT": "still-plain"}

    kept = vault.rotate_secrets_key(keep_old=True)
    assert kept.kept_old == 1 and SecretKeys(key_file).read()[1:] == new_keys
    assert vault.private_variables("hub") == {"TOKEN": "s3cret-value"}
    vault.set_private_variable("hub", "NEW", "x")
    assert Cipher(SecretKeys(key_file).read()[:1]).open(_raw(vault)["hub", "NEW"]) == "x"


def test_a_missing_key_is_an_error_saying_what_to_do_and_nothing_is_lost(store_url: str, vault, key_file) -> None:
    vault.set_private_variable("hub", "TOKEN", "s3cret-value")
    raw = _raw(vault)
    key_file.unlink()

    again = Store(make_engine(store_url), SecretKeys(key_file))
    try:
        with pytest.raises(StoreError) as info:
            again.setup()
        message = info.value.message
        assert str(key_file) in message and "missing" in message and "restore it from a backup" in message
        assert "1 private variables encrypted" in message
        assert not key_file.exists()  # no new key made over values it could not read
        with pytest.raises(StoreError, match="missing"):
            again.private_variables("hub")
        assert _raw(again) == raw
    finally:
        again.close()


def test_a_wrong_key_is_an_error_naming_the_variables(store_url: str, vault: Store, key_file: Path) -> None:
    vault.set_private_variable("hub", "TOKEN", "s3cret-value")
    _insert_plain(vault, "hub", "PLAIN", "stays-as-it-was")
    raw = _raw(vault)
    key_file.write_bytes(Fernet.generate_key() + b"\n")  # another instance's key, say

    again = Store(make_engine(store_url), SecretKeys(key_file))
    try:
        with pytest.raises(StoreError) as info:
            again.setup()
        assert f"the key in {key_file} does not decrypt 1 private variables (hub/TOKEN)" in info.value.message
        assert "--drop-unreadable" in info.value.message
        assert _raw(again) == raw  # nothing was encrypted or changed half-way
        with pytest.raises(StoreError, match="does not decrypt"):
            again.private_variables("hub")
        with pytest.raises(StoreError, match="does not decrypt"):
            again.rotate_secrets_key()
        assert _raw(again) == raw
    finally:
        again.close()


@pytest.mark.parametrize("damage", ["garbage", "directory", "empty"])
def test_an_unusable_key_file_is_an_error_saying_what_to_do(vault: Store, key_file: Path, damage: str) -> None:
    vault.set_private_variable("hub", "TOKEN", "s3cret-value")
    raw = _raw(vault)
    key_file.unlink()
    if damage == "garbage":
        key_file.write_text("not a key\n")
        expected = "is not a key file of private variables (line 1 is not a Fernet key)"
    elif damage == "directory":
        key_file.mkdir()
        expected = "cannot read the key of the private variables"
    else:
        key_file.write_text("\n")
        expected = "holds no key"
    fresh = Store(vault.engine, SecretKeys(key_file))
    with pytest.raises(StoreError) as info:
        fresh.setup()
    assert expected in info.value.message and str(key_file) in info.value.message
    assert _raw(vault) == raw


def test_values_no_key_decrypts_are_dropped_only_when_asked(store_url: str, vault: Store, key_file: Path) -> None:
    vault.set_private_variable("hub", "TOKEN", "s3cret-value")
    vault.set_private_variable("art", "KEY", "other")
    key_file.unlink()  # lost for good
    _insert_plain(vault, "plain", "P", "p-value")

    again = Store(make_engine(store_url), SecretKeys(key_file))
    try:
        with pytest.raises(StoreError, match="is missing while the store holds 2 private variables encrypted"):
            again.rotate_secrets_key()
        assert not key_file.exists()
        done = again.rotate_secrets_key(drop_unreadable=True)
        assert sorted(done.dropped) == ["art/KEY", "hub/TOKEN"] and (done.resealed, done.old_keys) == (1, 0)
        assert again.private_variables("hub") == {} and again.private_variables("plain") == {"P": "p-value"}
        again.setup()  # a start with the new key is clean
        again.set_private_variable("hub", "TOKEN", "set-again")
        assert again.private_variables("hub") == {"TOKEN": "set-again"}
    finally:
        again.close()


def test_a_store_without_a_key_file_refuses_private_variables(store: Store) -> None:
    with pytest.raises(StoreError, match="without the key of its private variables"):
        store.set_private_variable("hub", "TOKEN", "x")
    assert _raw(store) == {}


def test_is_sealed_tells_tokens_from_values() -> None:
    cipher = Cipher([Fernet.generate_key()])
    assert is_sealed(cipher.seal(""))
    assert is_sealed(cipher.seal("x" * 1000))
    for value in ("", "plain", PREFIX, PREFIX + "abc", PREFIX + "gAAAAA==", "fernet-ish:" + cipher.seal("x")[7:]):
        assert not is_sealed(value), value
