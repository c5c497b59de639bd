"""The run queue: at most N runs at once, one at a time per pipeline, in the order queued."""

from __future__ import annotations

import threading

import pytest
from waiting import wait_for

from mao.runqueue import RunQueue


class Recorder:
    """Work items that block until released, and note when each ran and how many at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.order: list[int] = []
        self.now = 0
        self.most = 0
        self.gates: dict[int, threading.Event] = {}

    def work(self, run_id: int):
        gate = self.gates.setdefault(run_id, threading.Event())

        def run() -> None:
            with self.lock:
                self.order.append(run_id)
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                assert gate.wait(10)
            finally:
                with self.lock:
                    self.now -= 1

        return run

    def release(self, *run_ids: int) -> None:
        for run_id in run_ids:
            self.gates.setdefault(run_id, threading.Event()).set()


def test_workers_bound_the_runs_at_once_and_the_rest_wait_in_order() -> None:
    queue, rec = RunQueue(2), Recorder()
    futures = [queue.submit(run_id, f"p{run_id}", rec.work(run_id)) for run_id in range(1, 6)]
    wait_for(lambda: len(rec.order) == 2, 5, "2 runs started")
    assert rec.order == [1, 2] and queue.waiting() == [3, 4, 5]
    assert queue.executing() == {"p1": 1, "p2": 2}
    rec.release(1)
    futures[0].result(5)
    wait_for(lambda: len(rec.order) == 3, 5, "3 runs started")
    assert rec.order == [1, 2, 3]
    rec.release(2, 3, 4, 5)
    for future in futures:
        future.result(5)
    assert rec.most == 2 and rec.order == [1, 2, 3, 4, 5] and queue.waiting() == []
    queue.shutdown()


def test_one_run_at_a_time_per_pipeline_others_go_past() -> None:
    queue, rec = RunQueue(3), Recorder()
    first = queue.submit(1, "p", rec.work(1))
    second = queue.submit(2, "p", rec.work(2))  # queued behind run 1
    other = queue.submit(3, "q", rec.work(3))
    wait_for(lambda: len(rec.order) == 2, 5, "2 runs started")
    assert rec.order == [1, 3] and queue.waiting("p") == [2]
    rec.release(3)
    other.result(5)
    assert queue.waiting("p") == [2] and not second.done()
    rec.release(1)
    first.result(5)
    wait_for(lambda: rec.order == [1, 3, 2], 5, "runs [1, 3, 2] started in that order")
    rec.release(2)
    second.result(5)
    queue.shutdown()


def test_discard_takes_a_waiting_run_out_and_shutdown_cancels_the_rest() -> None:
    queue, rec = RunQueue(1), Recorder()
    running = queue.submit(1, "p", rec.work(1))
    waiting = queue.submit(2, "q", rec.work(2))
    left = queue.submit(3, "r", rec.work(3))
    wait_for(lambda: rec.order == [1], 5, "runs [1] started in that order")
    assert queue.discard(2) is waiting and queue.discard(2) is None and queue.discard(1) is None
    assert queue.waiting() == [3]
    stopper = threading.Thread(target=queue.shutdown)
    stopper.start()
    rec.release(1)
    stopper.join(5)
    assert running.result(5) is None and left.cancelled() and rec.order == [1]
    with pytest.raises(RuntimeError, match="stopping"):
        queue.submit(4, "p", rec.work(4))


def test_a_failing_run_is_its_future_s_exception_and_the_queue_goes_on() -> None:
    queue = RunQueue(1)

    def boom() -> None:
        raise ValueError("boom")

    failed = queue.submit(1, "p", boom)
    after = queue.submit(2, "p", lambda: None)
    with pytest.raises(ValueError, match="boom"):
        failed.result(5)
    assert after.result(5) is None
    queue.shutdown()
