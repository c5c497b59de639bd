"""The run queue: recorded runs wait here, ``pending``, for one of ``max_parallel_runs`` workers.

Runs start in the order they were queued, at most ``max_parallel_runs`` at once and at most
one at a time per pipeline: a run queued behind an earlier run of its pipeline (overlap
policy ``queue``) starts once that one has ended. Recording a run never waits for a worker,
so a scheduler fire costs the same however many runs are executing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class _Item:
    run_id: int
    pipeline: str
    work: Callable[[], None]
    future: Future[None]


class RunQueue:
    """Waiting runs per pipeline (first in, first out) and the workers that execute them."""

    def __init__(self, workers: int, *, name: str = "mao-run") -> None:
        if workers < 1:
            raise ValueError("a run queue needs at least one worker")
        self.workers = workers
        self.name = name
        self._cond = threading.Condition()
        self._waiting: dict[str, deque[_Item]] = {}
        self._ready: deque[str] = deque()
        """Pipelines with a waiting run and none executing: what a free worker takes next."""
        self._executing: dict[str, int] = {}
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._stopping = False

    # public ----------------------------------------------------------------------

    def submit(self, run_id: int, pipeline: str, work: Callable[[], None]) -> Future[None]:
        """Queue ``work`` (the run's execution); the future resolves when it has returned."""
        future: Future[None] = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the run queue is stopping")
            queue = self._waiting.setdefault(pipeline, deque())
            queue.append(_Item(run_id, pipeline, work, future))
            if len(queue) == 1 and pipeline not in self._executing:
                self._ready.append(pipeline)
                self._cond.notify()
            if self._idle == 0 and len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def discard(self, run_id: int) -> Future[None] | None:
        """Take a run out of the queue before it started; its future (unresolved), or None
        if it is not waiting (executing, done, or never queued)."""
        with self._cond:
            for pipeline, queue in self._waiting.items():
                for item in queue:
                    if item.run_id == run_id:
                        queue.remove(item)
                        if not queue:
                            del self._waiting[pipeline]
                            if pipeline in self._ready:
                                self._ready.remove(pipeline)
                        return item.future
        return None

    def waiting(self, pipeline: str | None = None) -> list[int]:
        """Ids of the runs waiting (of ``pipeline``, or all), in the order they will start."""
        with self._cond:
            queues = [self._waiting.get(pipeline, deque())] if pipeline else list(self._waiting.values())
            return sorted(item.run_id for queue in queues for item in queue)

    def executing(self) -> dict[str, int]:
        """The run executing per pipeline."""
        with self._cond:
            return dict(self._executing)

    def shutdown(self, wait: bool = True) -> list[int]:
        """Stop taking runs: the waiting ones stay ``pending`` in the store (the next start
        recovers them) and their futures are cancelled. Returns their ids."""
        with self._cond:
            self._stopping = True
            left = [item for queue in self._waiting.values() for item in queue]
            self._waiting.clear()
            self._ready.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        for item in left:
            item.future.cancel()
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
        return sorted(item.run_id for item in left)

    # workers ---------------------------------------------------------------------

    def _take(self) -> _Item | None:
        with self._cond:
            self._idle += 1
            try:
                while not self._ready and not self._stopping:
                    self._cond.wait()
            finally:
                self._idle -= 1
            if self._stopping:
                return None
            pipeline = self._ready.popleft()
            queue = self._waiting[pipeline]
            item = queue.popleft()
            if not queue:
                del self._waiting[pipeline]
            self._executing[pipeline] = item.run_id
            return item

    def _done(self, item: _Item) -> None:
        with self._cond:
            self._executing.pop(item.pipeline, None)
            if item.pipeline in self._waiting and not self._stopping:
                self._ready.append(item.pipeline)
                self._cond.notify()

    def _work(self) -> None:
        while True:
            item = self._take()
            if item is None:
                return
            try:
                if item.future.set_running_or_notify_cancel():
                    try:
                        item.work()
                    except BaseException as exc:  # handed to whoever waits for the run
                        log.exception("run %s: its execution raised", item.run_id)
                        item.future.set_exception(exc)
                    else:
                        item.future.set_result(None)
            finally:
                self._done(item)
