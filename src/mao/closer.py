"""Recording the end of runs, retried until the store takes it.

A run's worker thread ends by closing the run in the store. When the store cannot write
(a full disk, a database restarting), the close is kept here and retried from a
background loop with backoff, after the worker thread is gone; the run meanwhile stays
visible as ``running`` and, once the store is writable again, is closed with the status
it really ended with, so the pipeline can run again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mao.errors import MAOError, StoreError
from mao.loop import LoopService
from mao.status import RunStatus

if TYPE_CHECKING:
    from mao.store.store import Store

log = logging.getLogger(__name__)

OnClosed = Callable[[int, RunStatus, "str | None"], None]


@dataclass
class PendingClose:
    status: RunStatus
    error: str | None
    attempts: int = 0
    due: float = 0.0
    last_error: str = ""


class RunCloser(LoopService):
    name = "run-closer"

    def __init__(
        self, store: Store, on_closed: OnClosed | None = None, *, first_delay: float = 0.5, max_delay: float = 30.0
    ) -> None:
        super().__init__(max_delay)
        self.store = store
        self.on_closed = on_closed
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._pending: dict[int, PendingClose] = {}
        self._lock = threading.Lock()  # guards _pending and the loop's start
        self._attempts = threading.Lock()  # one close attempt at a time

    # public ------------------------------------------------------------------------

    def close(self, run_id: int, status: RunStatus, error: str | None = None) -> bool:
        """Record the run's end now if the store takes it (True), else keep retrying it (False)."""
        with self._lock:
            self._pending[run_id] = PendingClose(RunStatus(status), error)
        self._attempt(run_id, force=True)
        if self.pending(run_id) is None:
            return True
        with self._lock:
            if not self.running and not self.stopping:
                self.start()
        self.wake()
        return False

    def pending(self, run_id: int) -> PendingClose | None:
        with self._lock:
            return self._pending.get(run_id)

    def pending_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._pending)

    def flush(self) -> list[int]:
        """Try every waiting close now; returns the ids still waiting."""
        for run_id in self.pending_ids():
            self._attempt(run_id, force=True)
        return self.pending_ids()

    # loop --------------------------------------------------------------------------

    def run_once(self) -> None:
        now = time.monotonic()
        for run_id in self.pending_ids():
            item = self.pending(run_id)
            if item is not None and item.due <= now:
                self._attempt(run_id)

    def next_interval(self) -> float:
        with self._lock:
            dues = [item.due for item in self._pending.values()]
        if not dues:
            return self.max_delay
        return min(max(min(dues) - time.monotonic(), 0.01), self.max_delay)

    def on_stop(self) -> None:
        left = self.flush()
        if left:
            log.error(
                "runs %s could not be closed before the stop (the store did not take it); "
                "they are marked interrupted at the next start",
                left,
            )

    # one attempt ---------------------------------------------------------------------

    def _attempt(self, run_id: int, force: bool = False) -> None:
        with self._attempts:
            item = self.pending(run_id)
            if item is None or (not force and item.due > time.monotonic()):
                return
            try:
                self.store.finish_run(run_id, item.status, item.error)
            except StoreError as exc:
                item.attempts += 1
                item.last_error = exc.message
                delay = min(self.first_delay * 2 ** (item.attempts - 1), self.max_delay)
                item.due = time.monotonic() + delay
                log.warning(
                    "run %s ended %s but the store did not record it (attempt %d, next in %.1fs): %s",
                    run_id,
                    item.status,
                    item.attempts,
                    delay,
                    exc.message,
                )
                return
            except MAOError as exc:  # gone, or closed otherwise meanwhile: nothing to retry
                log.warning("run %s could not be closed as %s: %s", run_id, item.status, exc.message)
                self._drop(run_id)
                return
            self._drop(run_id)
            if item.attempts:
                log.info("run %s closed as %s after %d failed attempts", run_id, item.status, item.attempts)
        if self.on_closed is not None:
            try:
                self.on_closed(run_id, item.status, item.error)
            except Exception:
                log.exception("after closing run %s", run_id)

    def _drop(self, run_id: int) -> None:
        with self._lock:
            self._pending.pop(run_id, None)
