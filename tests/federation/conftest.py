"""Federation fixtures: a real 3-member etcd cluster per module, the real Docker Engine, and
a Federation (instances added by each test) under a registry prefix of the test's own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_kit import EtcdCluster, EtcdMember, etcd_binary
from fedkit import Federation, free_port


def _missing(reason: str) -> None:
    if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def fed_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A cluster of this module's own: tests here stop members, which must not reach other modules."""
    binary = etcd_binary()
    if not binary or not os.access(binary, os.X_OK):
        _missing("no etcd binary: set MAO_TEST_ETCD_BIN or put etcd on PATH")
    root = tmp_path_factory.mktemp("fed-etcd")
    members = [
        EtcdMember(f"f{i + 1}", free_port(), free_port(), root / f"f{i + 1}", root / f"f{i + 1}.log") for i in range(3)
    ]
    cluster = EtcdCluster(binary, members)
    try:
        for i in range(3):
            cluster.start_member(i)
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def fed_docker_host() -> str:
    url = os.environ.get("MAO_TEST_DOCKER_HOST")
    if not url:
        _missing("MAO_TEST_DOCKER_HOST is not set")
    return url


@pytest.fixture(scope="session")
def fed_image() -> str:
    return os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")


@pytest.fixture
def federation(
    fed_etcd: EtcdCluster, fed_docker_host: str, fed_image: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Federation]:
    """No instance yet: ``federation.add_nodes(3)`` starts three. All are stopped afterwards,
    and any stopped etcd member is started again for the next test."""
    fed = Federation(fed_etcd, tmp_path, fed_docker_host, fed_image)
    try:
        yield fed
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(fed.logs())
        fed.close()
        fed.restore_members()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
