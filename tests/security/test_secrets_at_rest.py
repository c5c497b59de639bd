"""The data directory is 0700, the SQLite store with its -wal/-shm files and the key file 0600
(an older install is tightened at start, with a log line); private variables are encrypted
with the key file, which ``maoctl instance rotate-secrets-key`` replaces; a missing or wrong
key stops ``maoctl serve`` with one line saying what to do."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from mao.cli.serve import lock_data_dir, open_store
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.store import Store, make_engine
from mao.store.secrets import SecretKeys, is_sealed

SECRET = "s3cret-api-key-value"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _raw_values(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [value for (value,) in conn.execute("SELECT value FROM private_variables ORDER BY id")]


def _echo_token(spec, on_log) -> int:
    (spec.output_dir / "seen.txt").write_text(spec.env["TOKEN"])
    return 0


def _instance(data_dir: Path) -> tuple[Instance, FakeExecutor]:
    executor = FakeExecutor({"img/echo": _echo_token})
    inst = Instance(Settings(instance_name="vault", data_dir=data_dir), executor=executor)
    inst.setup()
    return inst, executor


def _define(inst: Instance, tmp_path: Path) -> None:
    bare = inst.datasets.create_bare("out")
    inst.catalog.add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(bare))))
    inst.catalog.add_tool(ToolIn(name="echo", image="img/echo"))
    step = {"name": "use", "tool": "echo", "output_dataset": "out", "env": {"TOKEN": "{{ API_KEY }}"}}
    inst.pipelines.init(
        PipelineIn.model_validate({"name": "keyed", "steps": [step], "private_variables": {"API_KEY": SECRET}})
    )


def _run_sees_the_secret(inst: Instance, executor: FakeExecutor) -> None:
    run_id = inst.runner.run_sync("keyed")
    assert inst.store.get_run(run_id).status == "succeeded", inst.store.get_run(run_id).error
    assert executor.calls[-1].env["TOKEN"] == SECRET


def test_a_new_data_directory_is_private_and_the_value_is_encrypted(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    inst, executor = _instance(data_dir)
    try:
        _define(inst, tmp_path)
        _run_sees_the_secret(inst, executor)
        db = data_dir / "mao.db"
        companions = [data_dir / "mao.db-wal", data_dir / "mao.db-shm"]
        assert all(path.exists() for path in companions)  # made by SQLite while the engine is open
        assert _mode(data_dir) == 0o700
        assert {path.name: _mode(path) for path in [db, *companions, data_dir / "secrets.key"]} == {
            "mao.db": 0o600,
            "mao.db-wal": 0o600,
            "mao.db-shm": 0o600,
            "secrets.key": 0o600,
        }
        [value] = _raw_values(db)
        assert is_sealed(value) and SECRET not in value
        assert SECRET.encode() not in db.read_bytes() + companions[0].read_bytes()
    finally:
        inst.close()


def test_an_older_install_is_tightened_and_its_plain_values_encrypted_at_start(tmp_path: Path, caplog) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    db = data_dir / "mao.db"
    old = Store(make_engine(f"sqlite:///{db}"))  # a store as an older version left it: no key, 0644
    old.migrate()
    old.close()
    db.chmod(0o644)
    holder = sqlite3.connect(db)  # another connection keeps -wal and -shm in place
    try:
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute(
            "INSERT INTO private_variables (pipeline, name, value) VALUES ('keyed', 'API_KEY', ?)", (SECRET,)
        )
        holder.commit()
        wal, shm = data_dir / "mao.db-wal", data_dir / "mao.db-shm"
        assert _mode(wal) == _mode(shm) == 0o644  # SQLite gives them the database's mode

        with caplog.at_level(logging.WARNING):
            open_store(Settings(instance_name="vault", data_dir=data_dir))
        assert _mode(data_dir) == 0o700
        assert (_mode(db), _mode(wal), _mode(shm), _mode(data_dir / "secrets.key")) == (0o600,) * 4
        messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        for path, mode in ((data_dir, "755"), (db, "644"), (wal, "644"), (shm, "644")):
            assert any(m.startswith(f"{path} was open to other users (mode {mode})") for m in messages), messages
        assert any("encrypted 1 private variables stored in plain text" in m for m in messages)
        [value] = [v for (v,) in holder.execute("SELECT value FROM private_variables")]
        assert is_sealed(value)

        caplog.clear()
        with caplog.at_level(logging.WARNING):
            open_store(Settings(instance_name="vault", data_dir=data_dir))  # the next start: nothing to do
        assert [r.getMessage() for r in caplog.records] == []
    finally:
        holder.close()


def test_rotating_the_key_encrypts_again_and_runs_still_get_the_secret(tmp_path: Path, maoctl) -> None:
    data_dir = tmp_path / "data"
    inst, executor = _instance(data_dir)
    try:
        _define(inst, tmp_path)
        _run_sees_the_secret(inst, executor)
    finally:
        inst.close()
    db, key_file = data_dir / "mao.db", data_dir / "secrets.key"
    before, old_key = _raw_values(db), key_file.read_bytes()

    lock = lock_data_dir(data_dir)  # an orchestrator serves it
    try:
        busy = maoctl("instance", "rotate-secrets-key", "--data-dir", str(data_dir))
    finally:
        lock.close()
    assert busy.code == 1 and "already serving the data directory" in busy.err and "stop it" in busy.err
    assert _raw_values(db) == before and key_file.read_bytes() == old_key

    done = maoctl("instance", "rotate-secrets-key", "--data-dir", str(data_dir))
    assert done.code == 0, done.err
    assert f"1 private variables encrypted with a new key in {key_file}" in done.out
    after = _raw_values(db)
    assert after != before and is_sealed(after[0]) and SECRET not in after[0]
    assert key_file.read_bytes() != old_key and len(key_file.read_bytes().split()) == 1
    assert _mode(key_file) == 0o600

    inst, executor = _instance(data_dir)  # the next start
    try:
        _run_sees_the_secret(inst, executor)
    finally:
        inst.close()


def test_a_lost_key_stops_the_rotation_unless_the_values_are_dropped(tmp_path: Path, maoctl) -> None:
    data_dir = tmp_path / "data"
    inst, _ = _instance(data_dir)
    try:
        _define(inst, tmp_path)
    finally:
        inst.close()
    (data_dir / "secrets.key").unlink()

    refused = maoctl("instance", "rotate-secrets-key", "--data-dir", str(data_dir))
    assert refused.code == 1 and "Traceback" not in refused.err
    assert "is missing while the store holds 1 private variables encrypted with it" in refused.err
    assert not (data_dir / "secrets.key").exists() and len(_raw_values(data_dir / "mao.db")) == 1

    dropped = maoctl("instance", "rotate-secrets-key", "--data-dir", str(data_dir), "--drop-unreadable")
    assert dropped.code == 0, dropped.err
    assert "0 private variables encrypted with a new key" in dropped.out
    assert "deleted, no key decrypted them (set them again): keyed/API_KEY" in dropped.err
    assert _raw_values(data_dir / "mao.db") == [] and _mode(data_dir / "secrets.key") == 0o600


def _serve(data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_")}
    env |= {"MAO_DATA_DIR": str(data_dir), "MAO_API_PORT": str(port)}
    return subprocess.run(
        [sys.executable, "-m", "mao.cli.main", "serve"], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("damage", ["missing", "wrong"])
def test_serve_stops_with_one_line_when_the_key_is_missing_or_wrong(tmp_path: Path, free_port, damage: str) -> None:
    data_dir = tmp_path / "data"
    store = Store(make_engine(f"sqlite:///{data_dir / 'mao.db'}"), SecretKeys(data_dir / "secrets.key"))
    store.setup()
    store.set_private_variable("keyed", "API_KEY", SECRET)
    store.close()
    data_dir.chmod(0o700)
    key_file = data_dir / "secrets.key"
    if damage == "missing":
        key_file.unlink()
    else:
        key_file.write_bytes(Fernet.generate_key() + b"\n")
    before = _raw_values(data_dir / "mao.db")

    result = _serve(data_dir, free_port())
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(key_file) in lines[0] and "restore" in lines[0] and "--drop-unreadable" in lines[0]
    assert _raw_values(data_dir / "mao.db") == before
    assert key_file.exists() == (damage == "wrong")  # no new key made over the values
