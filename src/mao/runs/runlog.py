"""A run's log: each line to the store in batches (:class:`~mao.store.logbuffer.LogBuffer`)
and to the event bus (``log``) as it comes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from mao.events import LogLine

if TYPE_CHECKING:
    from mao.events import EventBus
    from mao.store.logbuffer import LogBuffer

Note = Callable[[str], None]
"""Appends one line to a log (a run's step, a replayed task)."""


class RunLog:
    def __init__(self, buffer: LogBuffer, events: EventBus) -> None:
        self.buffer = buffer
        """Log lines on their way to the store: in batches, each within a fraction of a second."""
        self.events = events

    def line(self, run_id: int, step: str | None, line: str, attempt: int | None = None) -> None:
        self.buffer.add(run_id, step, line, attempt)
        self.events.publish(LogLine(run_id=run_id, step=step, line=line, attempt=attempt))

    def note(self, run_id: int, step: str | None, attempt: int | None = None) -> Note:
        """A writer of the lines of ``step`` (None: the run's own lines); ``attempt``: the
        step's attempt whose container writes them."""
        return partial(self.line, run_id, step, attempt=attempt)

    def flush(self) -> None:
        self.buffer.flush()

    def close(self) -> None:
        self.buffer.close()
