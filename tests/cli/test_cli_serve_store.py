"""`maoctl serve` on a damaged SQLite store: one line naming the file and what to do, non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mao.errors import StoreError
from mao.store import Store, make_engine


def _serve(data_dir, port) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_")}
    env |= {"MAO_DATA_DIR": str(data_dir), "MAO_API_PORT": str(port)}
    return subprocess.run(
        [sys.executable, "-m", "mao.cli.main", "serve"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    "content",
    [
        b"this is not a database at all\n" * 200,
        b"SQLite format 3\x00" + b"\xff" * 8192,  # the right header, then garbage
    ],
    ids=["garbage", "bad-pages"],
)
def test_corrupt_sqlite_stops_serve_with_one_line(tmp_path, free_port, content) -> None:
    data = tmp_path / "d"
    data.mkdir()
    db = data / "mao.db"
    db.write_bytes(content)
    result = _serve(data, free_port())
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(db) in lines[0] and "restore it from a backup" in lines[0]
    assert db.read_bytes() == content  # nothing was written to it


def test_corrupt_sqlite_is_a_store_error_naming_the_file(tmp_path) -> None:
    db = tmp_path / "mao.db"
    db.write_bytes(b"garbage" * 1000)
    store = Store(make_engine(f"sqlite:///{db}"))
    try:
        with pytest.raises(StoreError, match="not a readable SQLite database") as info:
            store.migrate()
        assert info.value.details == {"path": str(db)}
    finally:
        store.close()
