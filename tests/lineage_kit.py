"""An OpenLineage consumer for the tests (a real HTTP server keeping what is posted to it),
and the check of an event against the OpenLineage RunEvent JSON schema."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import openlineage.client

HERE = Path(__file__).parent / "lineage"


def _schema() -> dict:
    """The RunEvent schema: the spec's ``OpenLineage.json`` if the installed client ships it,
    else the one beside this test, written from the spec (the client's wheels carry none)."""
    root = Path(openlineage.client.__file__).parent.parent
    shipped = sorted(root.rglob("OpenLineage.json"))
    if shipped:
        return json.loads(shipped[0].read_text())
    return json.loads((HERE / "runevent.schema.json").read_text())


SCHEMA = _schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


class Receiver:
    """An OpenLineage consumer: a real HTTP server keeping every event posted to it."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.headers: list[dict] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.events.append(json.loads(body))
                received.headers.append(dict(self.headers))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of(self, job: str) -> list[dict]:
        return [e for e in self.events if e["job"]["name"] == job]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def valid(event: dict) -> dict:
    errors = sorted(VALIDATOR.iter_errors(event), key=str)
    assert not errors, [e.message for e in errors]
    return event
