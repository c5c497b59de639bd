"""Shared fixtures: settings on a temporary data dir, stores on SQLite and PostgreSQL,
a real 3-member etcd cluster on loopback, and helpers to find free ports.

Real services are found through environment variables:

- ``MAO_TEST_PG_URL``: a PostgreSQL URL whose user may create databases;
  each test gets a fresh database with a random name, dropped afterwards.
- ``MAO_TEST_ETCD_BIN``: the etcd binary (default: ``etcd`` on PATH).
- ``MAO_TEST_SWARM_HOST``: the Docker Engine of a one-node Swarm manager (``scripts/services.sh up``).
- ``MAO_TEST_REQUIRE_SERVICES=1``: a missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_kit import EtcdCluster, EtcdMember, etcd_binary
from remotes_kit import allowed_remote_roots

from mao.config import Settings
from mao.store import Store, make_engine

# The tests choose the terminal width they lay out for (COLUMNS in the environment they give).
# A width inherited from outside would be fixed by the CLI's console at its import (after this
# file's), for every test after: a pytest-xdist worker is started with COLUMNS=80 and LINES=24,
# which the readline that pytest imports puts in the environment of pytest's children.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

# ------------------------------------------------------------------------ pytest-xdist

WORKER_SUMMARY_LINES: list[str] = []
"""Lines the workers' fixtures had for the terminal summary (``workeroutput["summary_lines"]``):
a worker's own summary is not shown, the controller prints them."""


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    WORKER_SUMMARY_LINES.extend(getattr(node, "workeroutput", {}).get("summary_lines", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in WORKER_SUMMARY_LINES:
        terminalreporter.write_line(line)


# ------------------------------------------------------------------------ helpers


def services_required() -> bool:
    return os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes")


def missing_service(reason: str) -> None:
    """Skip the test, or fail it when the services are required to be there."""
    if services_required():
        pytest.fail(f"{reason} (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def free_ports(count: int = 1) -> list[int]:
    """Ports that were free on 127.0.0.1 a moment ago (all held open together, so distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


@pytest.fixture(name="free_port", scope="session")
def free_port_fixture():
    """A function returning a free loopback port."""
    return free_port


@pytest.fixture(autouse=True)
def _clean_mao_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The developer's own MAO_* settings must not leak into tests (MAO_TEST_* stay).

    Tests keep their bare repositories under their tmp_path (and the services' git
    server root): those are allowed as local dataset remotes, here for every test and
    every process it starts, through ``MAO_LOCAL_REMOTE_ROOTS``. Tests of the default
    (``<data_dir>/repos`` only) delete the variable.

    Starlette's TestClient sends ``Host: testserver``: that name is allowed through
    ``MAO_ALLOWED_HOSTS`` (as Django's test runner adds it to ALLOWED_HOSTS). Tests of the
    host check delete or set the variable.
    """
    for name in list(os.environ):
        if name.startswith("MAO_") and not name.startswith("MAO_TEST_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAO_LOCAL_REMOTE_ROOTS", ",".join(allowed_remote_roots(tmp_path_factory)))
    monkeypatch.setenv("MAO_ALLOWED_HOSTS", "testserver")


# ------------------------------------------------------------------------ settings


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Standalone settings: local registry in a SQLite file under a temporary data dir."""
    return Settings(instance_name="test-node", data_dir=data_dir)


# ------------------------------------------------------------------------ PostgreSQL


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("MAO_TEST_PG_URL")
    if not url:
        missing_service("MAO_TEST_PG_URL is not set")
    return url


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(pg_url)
    name = f"mao_t_{uuid.uuid4().hex[:12]}"
    admin_dsn = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        missing_service(f"PostgreSQL at {base.render_as_string(hide_password=True)} cannot be reached: {exc}")
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()


def _store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'mao.db'}"
    return request.getfixturevalue("pg_database")


STORE_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORE_PARAMS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh PostgreSQL database."""
    return _store_url(request.param, request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated Store on each database backend."""
    s = Store(make_engine(store_url))
    s.migrate()
    try:
        yield s
    finally:
        s.close()


# ------------------------------------------------------------------------ Docker Swarm


@pytest.fixture(scope="session")
def swarm_host() -> str:
    """The address of a Docker Engine that is a Swarm manager, answering."""
    import docker

    url = os.environ.get("MAO_TEST_SWARM_HOST")
    if not url:
        missing_service("MAO_TEST_SWARM_HOST is not set")
    try:
        client = docker.DockerClient(base_url=url, timeout=10)
        try:
            swarm = client.info().get("Swarm") or {}
        finally:
            client.close()
    except Exception as exc:
        missing_service(f"the swarm engine at {url} does not answer: {exc}")
    if not swarm.get("ControlAvailable"):
        missing_service(f"the engine at {url} is not a swarm manager (state {swarm.get('LocalNodeState')!r})")
    return url


# ------------------------------------------------------------------------ etcd


@pytest.fixture(scope="session")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A real 3-member etcd cluster on loopback, free ports, data under a temp dir."""
    binary = etcd_binary()
    if not binary or not os.access(binary, os.X_OK):
        missing_service("no etcd binary: set MAO_TEST_ETCD_BIN or put etcd on PATH")
    root = tmp_path_factory.mktemp("etcd")
    ports = free_ports(6)
    members = [
        EtcdMember(f"n{i + 1}", ports[2 * i], ports[2 * i + 1], root / f"n{i + 1}", root / f"n{i + 1}.log")
        for i in range(3)
    ]
    cluster = EtcdCluster(binary, members)
    try:
        for i in range(3):
            cluster.start_member(i)
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix of its own for each test, so tests sharing the cluster never meet."""
    return f"/mao-test-{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def maoctl(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``maoctl ARGS...`` in this process through the real entry point; a Result."""
    from maoctl_kit import Result

    from mao.cli import output
    from mao.cli.main import main

    monkeypatch.setattr(output.console, "_width", 160)  # wide tables: names are not folded
    monkeypatch.setattr(output.err_console, "_width", 400)  # errors are not folded

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
