"""Log lines written to the store in batches: one transaction per batch, not per line.

A line is stored at the latest ``max_delay`` seconds after it was added (a background
thread flushes what has waited that long), at once when ``max_lines`` are waiting, and
whenever :meth:`LogBuffer.flush` is called (a step's end, a run's close). Lines keep
their order. A batch the store refuses stays buffered and is tried again with the next
flush, up to ``max_kept`` lines; :meth:`LogBuffer.close` flushes what is left. A line
is kept to :data:`~mao.untrusted.MAX_LOG_LINE_BYTES`, so what waits stays bounded too.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from mao.errors import MAOError
from mao.untrusted import cap_line

if TYPE_CHECKING:
    from mao.store.store import Store

log = logging.getLogger(__name__)

LogEntry = tuple[int, "str | None", str, "int | None"]
"""``(run_id, step, line, attempt)``: ``attempt`` the step's attempt whose container wrote it."""


class LogBuffer:
    def __init__(self, store: Store, *, max_lines: int = 200, max_delay: float = 0.2, max_kept: int = 100_000) -> None:
        self.store = store
        self.max_lines = max_lines
        self.max_delay = max_delay
        self.max_kept = max_kept
        self._lines: list[LogEntry] = []
        self._since: float | None = None  # when the oldest waiting line was added
        self._lock = threading.Lock()  # guards _lines and _since
        self._writing = threading.Lock()  # one batch at a time, so lines keep their order
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, run_id: int, step: str | None, line: str, attempt: int | None = None) -> None:
        """Wait ``line`` for the next batch, cut to :data:`~mao.untrusted.MAX_LOG_LINE_BYTES`."""
        line = cap_line(line)
        with self._lock:
            self._lines.append((run_id, step, line, attempt))
            if self._since is None:
                self._since = time.monotonic()
            full = len(self._lines) >= self.max_lines
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="mao-log-flush", daemon=True)
                self._thread.start()
            self._wake.notify()
        if full:
            self.flush()

    def waiting(self) -> int:
        with self._lock:
            return len(self._lines)

    def flush(self) -> bool:
        """Store every waiting line now; False if the store refused them (they stay waiting)."""
        with self._writing:
            with self._lock:
                batch, self._lines, self._since = self._lines, [], None
            if not batch:
                return True
            try:
                self.store.append_logs(batch)
            except MAOError as exc:
                with self._lock:
                    self._lines = batch + self._lines
                    dropped = len(self._lines) - self.max_kept
                    if dropped > 0:
                        del self._lines[:dropped]
                        log.warning("dropped the %d oldest log lines the store would not take", dropped)
                    self._since = self._since or time.monotonic()
                log.warning("could not store %d log lines (kept to retry): %s", len(batch), exc.message)
                return False
            return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (self._since is None or time.monotonic() - self._since < self.max_delay):
                    timeout = None if self._since is None else self.max_delay - (time.monotonic() - self._since)
                    self._wake.wait(timeout=timeout)
                if self._closed:
                    return
            if not self.flush():
                time.sleep(self.max_delay)
