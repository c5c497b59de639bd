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
    ExecutorError,
    GitError,
    InvalidInput,
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
