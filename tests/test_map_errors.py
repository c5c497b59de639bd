"""One table maps foreign errors to the project's: map_errors and where it is used."""

from __future__ import annotations

import sqlite3
import subprocess

import docker.errors
import etcd3gw.exceptions
import httpx
import pytest
import requests
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from mao.errors import (
    AlreadyExists,
    Conflict,
    ExecutorError,
    GitError,
    InvalidInput,
    MAOError,
    MergeConflict,
    RegistryUnavailable,
    StoreError,
    Unavailable,
    foreign,
    map_errors,
)


@pytest.mark.parametrize(
    ("kind", "exc", "expected"),
    [
        ("store", OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error")), StoreError),
        ("store", InterfaceError("SELECT 1", {}, sqlite3.InterfaceError("bad binding")), StoreError),
        ("engine", docker.errors.APIError("no such image"), ExecutorError),
        ("engine", requests.ConnectionError("refused"), ExecutorError),
        ("etcd", etcd3gw.exceptions.ConnectionFailedError("down"), RegistryUnavailable),
        ("etcd", requests.exceptions.ChunkedEncodingError("cut"), RegistryUnavailable),
        ("http", httpx.ConnectError("refused"), Unavailable),
        ("git", subprocess.CalledProcessError(128, ["git", "fetch"]), GitError),
        ("git", FileNotFoundError(2, "No such file or directory", "git"), GitError),
    ],
)
def test_the_table(kind, exc, expected) -> None:
    with pytest.raises(expected) as info, map_errors(kind, "the thing at X"):
        raise exc
    assert info.value.__cause__ is exc
    assert info.value.message.startswith("the thing at X failed: ")
    assert "\n" not in info.value.message and "[SQL" not in info.value.message


def test_project_errors_and_other_exceptions_pass_through() -> None:
    with pytest.raises(InvalidInput), map_errors("store", "s"):
        raise InvalidInput("bad name")
    with pytest.raises(KeyError), map_errors("store", "s"):
        raise KeyError("not a store failure")
    with pytest.raises(requests.ConnectionError), map_errors("store", "s"):
        raise requests.ConnectionError("a store does not map requests' errors")


def test_keep_error_and_details_and_decorator_use() -> None:
    integrity = IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    with pytest.raises(IntegrityError), map_errors("store", "s", keep=(IntegrityError,)):
        raise integrity

    @map_errors("http", "the executor service at http://x", error=ExecutorError, details={"url": "http://x"})
    def call() -> None:
        raise httpx.ReadTimeout("slow")

    with pytest.raises(ExecutorError) as info:
        call()
    assert info.value.details == {"url": "http://x"} and "ReadTimeout: slow" in info.value.message
    made = foreign(
        "etcd", "etcd at http://e:2379 refused the request", etcd3gw.exceptions.Etcd3Exception('{"error":"x"}')
    )
    assert isinstance(made, RegistryUnavailable) and '{"error":"x"}' in made.message
    with pytest.raises(ValueError):
        map_errors("nosuch", "x")
    with pytest.raises(Unavailable, match=r"^cannot reach http://m: ConnectError: refused$"):
        with map_errors("http", "cannot reach http://m: {error}"):
            raise httpx.ConnectError("refused")


def _error_classes() -> list[type[MAOError]]:
    found, todo = set(), [MAOError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return sorted((c for c in found if c.__module__ == "mao.errors"), key=lambda c: c.__name__)


def test_every_unreachable_service_is_unavailable() -> None:
    """A caller that waits out an unreachable service catches ``Unavailable`` and gets each of them."""
    for kind, exc in [
        ("store", OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error"))),
        ("engine", docker.errors.APIError("no such image")),
        ("etcd", etcd3gw.exceptions.ConnectionFailedError("down")),
        ("http", httpx.ConnectError("refused")),
    ]:
        with pytest.raises(Unavailable) as info, map_errors(kind, "the service"):
            raise exc
        assert info.value.status_code == 503
    unavailable = {cls for cls in _error_classes() if cls.status_code == 503}
    assert unavailable and all(issubclass(cls, Unavailable) for cls in unavailable), unavailable


def test_a_merge_conflict_is_a_conflict_not_a_git_failure() -> None:
    """A merge git refused on conflicting files is a state conflict (409): a handler of failed git
    commands (502) does not take it, one of conflicts does."""
    try:
        raise MergeConflict("merging a into ground-truth conflicts in: x.csv", ["x.csv"])
    except GitError:
        pytest.fail("a merge conflict was handled as a failed git command")
    except Conflict as exc:
        assert exc.status_code == 409 and exc.to_dict()["error"]["code"] == "merge_conflict"
        assert exc.to_dict()["error"]["details"] == {"files": ["x.csv"]}
    conflicts = {cls for cls in _error_classes() if cls.status_code == 409}
    assert all(issubclass(cls, (Conflict, AlreadyExists)) for cls in conflicts), conflicts
    assert not any(issubclass(cls, GitError) for cls in conflicts)
