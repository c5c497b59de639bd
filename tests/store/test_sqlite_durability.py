"""SQLite's synchronous setting: what is set, and that a commit outlives a killed process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from mao.errors import StoreError
from mao.store import Store, make_engine


@pytest.mark.parametrize(("setting", "level"), [("normal", 1), ("full", 2)])
def test_the_synchronous_level_is_the_setting(tmp_path: Path, setting: str, level: int) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'mao.db'}", sqlite_synchronous=setting)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == level
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_an_unknown_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="sqlite_synchronous"):
        make_engine(f"sqlite:///{tmp_path / 'mao.db'}", sqlite_synchronous="off")


def test_a_committed_run_outlives_a_sigkilled_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mao.db'}"
    child = textwrap.dedent(
        f"""
        import os, signal
        from mao.store import Store, make_engine
        store = Store(make_engine({url!r}))  # the default level
        store.migrate()
        run = store.create_run("p", [{{"name": "s", "tool": "t", "output_dataset": "d"}}])
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    run_id = int(done.stdout.split()[0])
    store = Store(make_engine(url))
    try:
        assert store.get_run(run_id).pipeline == "p"
    finally:
        store.close()
    assert os.path.exists(tmp_path / "mao.db")
