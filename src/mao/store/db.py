"""Engine creation and migrations. Nothing connects until ``make_engine`` is called."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from mao.errors import StoreError, describe_foreign
from mao.store.files import create_private_file

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, sqlite_synchronous: str = "normal") -> Engine:
    """Create the engine; for SQLite make the parent folder (0700 when new) and an empty
    database file readable by this user only (0600; its ``-wal`` and ``-shm`` files take that
    mode), enable WAL, FKs and a busy timeout, and set ``synchronous`` (``normal`` or
    ``full``, see ``Settings.sqlite_synchronous``)."""
    if sqlite_synchronous not in ("normal", "full"):
        raise StoreError(f"invalid sqlite_synchronous {sqlite_synchronous!r}: use normal or full")
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StoreError(f"invalid store URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if database := sqlite_file(url):
            try:
                database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                create_private_file(database)
            except OSError as exc:
                raise StoreError(f"cannot create the local store {database}: {exc.strerror}") from exc
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(
            dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry
        ) -> None:  # pragma: no cover - exercised via every sqlite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous.upper()}")  # one of two literals
            cur.close()

        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for another database or one in memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    if parsed.database.startswith("file:"):
        return None  # a URI filename: SQLite's own business
    return Path(parsed.database).absolute()


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


_CORRUPT = ("file is not a database", "database disk image is malformed", "file is encrypted")


def _corrupt_sqlite(engine: Engine, exc: BaseException) -> StoreError | None:
    """One line naming a damaged SQLite file and what to do about it."""
    if engine.url.get_backend_name() != "sqlite" or not engine.url.database:
        return None
    text = str(getattr(exc, "orig", exc)).lower()
    if not any(marker in text for marker in _CORRUPT):
        return None
    path = Path(engine.url.database).absolute()
    return StoreError(
        f"the local store {path} is not a readable SQLite database ({text}): stop the orchestrator, move the "
        "file aside and restore it from a backup, or remove it to start with an empty store (this instance's "
        "pipelines, run history and private variables are then lost; the registry and datasets are not)",
        details={"path": str(path)},
    )


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        command.upgrade(alembic_config(engine), "head")
    except SQLAlchemyError as exc:
        raise _corrupt_sqlite(engine, exc) or StoreError(
            f"cannot migrate the store at {where}: {describe_foreign(exc)}"
        ) from exc
