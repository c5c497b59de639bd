"""A run as it happens, as Server-Sent Events: its status, its steps' statuses and its log lines.

The stream subscribes to the instance's event bus first, then sends what is stored (the
run, its steps, the log lines after the page's last one), then what happens, until the run
ends. Log events only wake the stream: the lines themselves are read from the store after
the last id sent, so the replay and the live part never lose or repeat a line, and each
line is the stored (masked) one.

The page itself shows the last :data:`PAGE_LINES` lines (:func:`log_page`), with a link
that loads the ones before them, a page at a time; ``run.js`` keeps the live log to that
many lines too, dropping the oldest while the reader follows the end.

A stream also ends after ``STREAM_S`` seconds with a ``retry`` hint: the browser's
EventSource reconnects at once, sending the id of the last line it got, and the stream
resumes from there. So a server that stops waits for no run page longer than that (uvicorn
finishes open responses before it shuts down).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request

from mao.events import LogLine, RunFinished, RunStarted, StepFinished, StepStarted
from mao.instance import Instance
from mao.operations import log_dict, run_dict
from mao.status import RunStatus

RunEvent = LogLine | RunStarted | RunFinished | StepStarted | StepFinished
"""What a run's stream follows."""
KEEPALIVE_S = 5.0
STREAM_S = 10.0
BATCH = 1000
PAGE_LINES = 1000
"""Log lines the run page shows at first (the last ones), and loads each time earlier ones are asked for."""


def log_page(instance: Instance, run_id: int, before: int | None = None) -> dict[str, Any]:
    """The last :data:`PAGE_LINES` lines of a run (before the line ``before`` if given), as
    the page shows them: ``lines``, ``earlier`` (the id to read on back from, or None when
    these are the first) and ``after`` (the last line's id, where the live log goes on)."""
    rows = instance.store.logs(run_id, limit=PAGE_LINES, before=before, tail=True)
    first = rows[0].id if rows else before
    more = first is not None and instance.store.has_logs(run_id, below=first)
    return {
        "run_id": run_id,
        "lines": [log_dict(row) for row in rows],
        "earlier": first if more else None,
        "after": rows[-1].id if rows else 0,
    }


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


class RunStream:
    """One client's view of one run; build it in the request, then iterate :meth:`events`."""

    def __init__(self, instance: Instance, run_id: int, after: int) -> None:
        self.instance = instance
        self.run_id = run_id
        self.after = after
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        self._unsubscribe: Callable[[], None] | None = instance.events.subscribe(
            self._hand_off, LogLine, RunStarted, RunFinished, StepStarted, StepFinished
        )

    def _hand_off(self, event: RunEvent) -> None:
        """Runs in the publisher's thread: only hand the event to the stream's loop."""
        if event.run_id == self.run_id:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def _lines(self) -> AsyncIterator[str]:
        while True:
            lines = await asyncio.to_thread(self.instance.store.logs, self.run_id, self.after, None, BATCH)
            for line in lines:
                self.after = line.id
                body = log_dict(line)
                yield sse("line", {"step": body["step"], "ts": body["ts"], "line": body["line"]}, line.id)
            if len(lines) < BATCH:
                return

    async def events(self, request: Request) -> AsyncIterator[str]:
        try:
            run = run_dict(await asyncio.to_thread(self.instance.store.get_run, self.run_id))
            yield sse("run", {"status": run["status"]})
            for step in run["steps"]:
                yield sse("step", _step(step["name"], step["status"], step["duration"]))
            async for chunk in self._lines():
                yield chunk
            if RunStatus(run["status"]).terminal:
                yield sse("end", {"status": run["status"], "error": run["error"]})
                return
            until = self.loop.time() + STREAM_S
            while True:
                left = until - self.loop.time()
                if left <= 0:
                    yield "retry: 500\n\n"  # resumed from the last line's id by the browser
                    return
                try:
                    first = await asyncio.wait_for(self.queue.get(), min(KEEPALIVE_S, left))
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                batch = [first]
                while not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                async for chunk in self._batch(batch):
                    yield chunk
                if any(isinstance(e, RunFinished) for e in batch):
                    return
        finally:
            self.close()

    async def _batch(self, batch: list[RunEvent]) -> AsyncIterator[str]:
        """The events in order; the log lines they announce are read once per batch."""
        pending = False
        for event in batch:
            if isinstance(event, LogLine):
                pending = True
                continue
            if pending:
                async for chunk in self._lines():
                    yield chunk
                pending = False
            if isinstance(event, StepStarted):
                yield sse("step", _step(event.step, RunStatus.RUNNING.value, None))
            elif isinstance(event, StepFinished):
                yield sse("step", _step(event.step, str(event.status), event.duration_s))
            elif isinstance(event, RunStarted):
                yield sse("run", {"status": RunStatus.RUNNING.value})
            elif isinstance(event, RunFinished):
                async for chunk in self._lines():
                    yield chunk
                yield sse("end", {"status": str(event.status), "error": event.error})
                return
        if pending:
            async for chunk in self._lines():
                yield chunk


def _step(name: str, status: str, duration: float | None) -> dict[str, Any]:
    return {"name": name, "status": status, "duration": duration}
