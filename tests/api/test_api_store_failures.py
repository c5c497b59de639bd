"""A failing local store is a 503 from every route, never a 500; run status filters are checked."""

from __future__ import annotations

import sqlite3

from sqlalchemy import event


def test_any_database_failure_of_the_api_is_a_503_not_a_500(client, assert_error_shape) -> None:
    """Not only OperationalError: every SQLAlchemy error becomes StoreError (503)."""
    engine = client.app.state.instance.store.engine

    def hook(conn, cursor, statement, parameters, context, executemany) -> None:
        raise sqlite3.InterfaceError("Error binding parameter 1")

    event.listen(engine, "before_cursor_execute", hook)
    try:
        for path in ("/runs", "/pipeline", "/runs/1"):
            response = client.get(path)
            error = assert_error_shape(response, 503)
            assert error["code"] == "store_unavailable" and "InterfaceError" in error["message"]
    finally:
        event.remove(engine, "before_cursor_execute", hook)
    assert client.get("/runs").status_code == 200


def test_unknown_status_filter_is_a_400(client, assert_error_shape) -> None:
    error = assert_error_shape(client.get("/runs", params={"status": "done"}), 400)
    assert "succeeded" in error["message"]
    assert client.get("/runs", params={"status": "failed"}).json() == {"runs": []}
