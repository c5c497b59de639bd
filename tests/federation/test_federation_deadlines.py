"""Slot deadlines on three instances, a real etcd cluster, real cron fires and a webhook
receiver: the slot of an instance that is down raises exactly one alert, sent by one of the
live instances; a slot delivered in time raises none."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fedkit import UNREACHABLE, Federation, Node
from waiting import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.slow]

MISSED = "slot.deadline_missed"
SRC = str(Path(__file__).resolve().parents[2] / "src")


class Hooks:
    """A webhook receiver: every JSON body POSTed to it, with its ``X-MAO-Event``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                hooks.received.append((self.headers.get("x-mao-event", ""), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def missed(self) -> list[dict[str, Any]]:
        return [body for kind, body in list(self.received) if kind == MISSED]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks() -> Any:
    receiver = Hooks()
    yield receiver
    receiver.close()


def writer(name: str, dataset: str, deadline: str) -> dict[str, Any]:
    script = 'echo "$MAO_SLOT" > "/usr/src/app/data/$MAO_INSTANCE.txt"'
    return {
        "name": name,
        "deadline": deadline,
        "steps": [{"name": f"{name}-w", "tool": "writer", "output_dataset": dataset, "cmd": ["sh", "-c", script]}],
    }


def row(node: Node, pipeline: str, slot: str) -> dict[str, Any] | None:
    grid = node.get("/federation/coverage", params={"pipeline": pipeline, "since": "1h"})
    return next((r for r in grid["slots"] if r["slot"] == slot), None)


def maoctl(node: Node, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": SRC, "MAO_URL": node.url, "MAO_API_TOKEN": node.token, "NO_COLOR": "1"}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-m", "mao.cli.main", *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def alerts_counted(node: Node) -> float:
    with node.client() as client:
        text = client.get("/metrics").text
    found = re.findall(r'^mao_slot_deadline_missed_total\{pipeline="late"\} (\S+)$', text, re.M)
    return float(found[0]) if found else 0.0


def test_a_slot_of_a_stopped_instance_raises_one_alert_and_a_delivered_slot_none(
    federation: Federation, hooks: Hooks
) -> None:
    rule = {"name": "deadlines", "events": [MISSED], "webhook": hooks.url}
    a, b, c = federation.add_nodes(3, deadline_check_interval=1, notifications=[rule])
    federation.register_tool("writer")
    federation.register_dataset("dl-ontime")
    federation.register_dataset("dl-late")
    federation.define(writer("ontime", "dl-ontime", "50s"), nodes=[a])
    federation.define(writer("late", "dl-late", "15s"), nodes=[c])
    # both schedules and c's stop well before the next minute's fire
    wait_for(lambda: datetime.now(UTC).second < 35, 60, "the first 35 s of a minute", interval=0.5)
    slot = a.schedule("ontime", "* * * * *")["next_run_time"]
    assert c.schedule("late", "* * * * *")["next_run_time"] == slot
    c.stop()
    slot = slot.replace("+00:00", "Z")
    schedules = {s["pipeline"]: s for s in b.get("/federation/schedules")["schedules"]}
    assert schedules["late"]["deadline"] == "15s" and schedules["late"]["instance"] == c.name
    assert schedules["ontime"]["deadline"] == "50s"

    # the slot c should have delivered: one alert, from a or b
    first = wait_for(
        lambda: next((m for m in hooks.missed() if m["data"]["slot"] == slot), None),
        150,
        f"an alert for slot {slot} of late",
    )
    assert first["data"]["pipeline"] == "late" and first["data"]["reason"] == "undelivered"
    assert first["instance"] in (a.name, b.name)
    assert first["data"]["deadline"] == slot[:-3] + "15Z"

    # the slot a delivered: its deadline passes (checked by a or b) and nothing is sent
    met = wait_for(
        lambda: (r := row(b, "ontime", slot)) is not None and r["deadline"] == "met" and r,
        150,
        f"slot {slot} of ontime checked at its deadline",
        ignore=UNREACHABLE,
    )
    assert met["delivered_by"] == [a.name]
    assert [m for m in hooks.missed() if m["data"]["pipeline"] == "ontime"] == []
    per_slot = Counter(m["data"]["slot"] for m in hooks.missed() if m["data"]["pipeline"] == "late")
    assert per_slot[slot] == 1 and set(per_slot.values()) == {1}, per_slot

    late = b.get("/federation/coverage", params={"pipeline": "late", "since": "1h"})
    assert slot in late["deadlines_missed"]
    assert next(r for r in late["slots"] if r["slot"] == slot)["deadline"] == "missed"
    assert alerts_counted(a) + alerts_counted(b) >= 1
    table = maoctl(b, "federation", "coverage", "late", "--since", "1h")
    assert re.search(rf"^{slot}( \(open\))? \(deadline missed\)", table, re.M), table
    listed = json.loads(maoctl(b, "federation", "schedules", "late", "--json"))
    assert [(s["instance"], s["deadline"]) for s in listed] == [(c.name, "15s")]
