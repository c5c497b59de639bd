"""A store that cannot write (a full disk) when a run ends: the close is retried until it lands.

The store is the real SQLite one; a cursor hook makes its writes fail with SQLite's own
"database or disk is full" while the disk is "full".
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from runkit import TWO_STEPS
from sqlalchemy import event
from waiting import wait_for

from mao.errors import Conflict, StoreError
from mao.status import RunStatus

CLOSING = "UPDATE runs SET status=?, error=?, finished_at=?"
"""The statement that closes a run."""


class FullDisk:
    """Makes matching write statements of a real SQLite engine fail as on a full disk."""

    def __init__(self, engine, match: str = "") -> None:
        self.full = threading.Event()
        self.match = match
        self.remaining: int | None = None  # fail this many times, then work again
        self.failures = 0
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._hook)
        self.engine = engine

    def _hook(self, conn, cursor, statement, parameters, context, executemany) -> None:
        words = statement.lstrip().split(None, 1)
        if not words or words[0].upper() not in ("INSERT", "UPDATE", "DELETE"):
            return
        if self.match and self.match not in statement:
            return
        with self._lock:
            if self.remaining is not None:
                if self.remaining <= 0:
                    return
                self.remaining -= 1
            elif not self.full.is_set():
                return
            self.failures += 1
        raise sqlite3.OperationalError("database or disk is full")

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hook)


def test_a_full_disk_is_a_store_error(instance) -> None:
    disk = FullDisk(instance.store.engine)
    disk.full.set()
    try:
        with pytest.raises(StoreError, match="disk is full"):
            instance.store.add_pipeline("p", "", TWO_STEPS["steps"])
    finally:
        disk.remove()


def test_close_failing_n_times_lands_with_the_real_status(instance, define, remotes) -> None:
    define(TWO_STEPS)
    instance.runner.closer.first_delay = 0.2
    # only the statement that closes the run fails, three times: the run itself succeeded
    disk = FullDisk(instance.store.engine, match=CLOSING)
    disk.remaining = 3
    original = instance.store.finish_run
    closing = threading.Event()

    def finish_run(*args, **kwargs):
        closing.set()
        return original(*args, **kwargs)

    instance.store.finish_run = finish_run
    try:
        run_id = instance.runner.start("two")
        wait_for(lambda: closing.is_set() and instance.runner.closer.pending(run_id) is not None, 20, "a failed close")
        # meanwhile the run is visible as running, and cancelling it is not refused
        assert instance.store.get_run(run_id).status == RunStatus.RUNNING
        assert instance.runner.cancel(run_id) is True
        wait_for(lambda: instance.runner._futures.get(run_id) is None, 20, "the worker to end")  # it is gone

        wait_for(lambda: instance.store.get_run(run_id).status != RunStatus.RUNNING, 20, "the retried close")
        run = instance.store.get_run(run_id)
        assert run.status == RunStatus.SUCCEEDED and run.error is None and run.finished_at is not None
        assert [s.status for s in run.steps] == ["succeeded", "succeeded"]
        assert disk.failures == 3 and instance.runner.closer.pending_ids() == []
        # the run's last log line is written after the store took the close: wait for it
        wait_for(
            lambda: "run succeeded" in [line.line for line in instance.store.logs(run_id)], 20, "the last log line"
        )

        second = instance.runner.run_sync("two")  # the pipeline runs again, without a restart
        assert instance.store.get_run(second).status == RunStatus.SUCCEEDED
    finally:
        disk.remove()


def test_disk_full_during_a_run_does_not_leave_it_running(instance, define, remotes, executor) -> None:
    define(TWO_STEPS)
    instance.runner.closer.first_delay = 0.2
    instance.runner.closer.max_delay = 0.5
    disk = FullDisk(instance.store.engine)
    entered, release = threading.Event(), threading.Event()
    original = executor.tools["img/collect"]

    def filling(spec, on_log):
        entered.set()
        release.wait(10)
        disk.full.set()  # the tool fills the disk
        return original(spec, on_log)

    executor.tools["img/collect"] = filling
    try:
        run_id = instance.runner.start("two")
        assert entered.wait(10)
        release.set()
        wait_for(lambda: instance.runner.closer.pending(run_id) is not None, 20, "a close that the store refused")
        # several retries fail while the disk is full, and the run stays open meanwhile
        wait_for(lambda: instance.runner.closer.pending(run_id).attempts >= 2, 20, "a second refused close")
        assert instance.store.get_run(run_id).status == RunStatus.RUNNING
        instance.runner.cancel(run_id)  # not "not executing in this process"
        with pytest.raises(StoreError, match="has ended"):  # 503 saying why, not 409 "in progress"
            instance.runner.start("two")

        disk.full.clear()  # space is freed
        wait_for(lambda: RunStatus(instance.store.get_run(run_id).status).terminal, 20, "the run to be closed")
        run = instance.store.get_run(run_id)
        assert run.status == RunStatus.FAILED and "disk is full" in run.error
        assert all(RunStatus(s.status).terminal for s in run.steps)
        executor.tools["img/collect"] = original
        assert instance.store.get_run(instance.runner.run_sync("two")).status == RunStatus.SUCCEEDED
    finally:
        release.set()
        disk.remove()


def test_a_new_run_right_after_the_store_recovers_is_not_refused(instance, define, remotes) -> None:
    define(TWO_STEPS)
    instance.runner.closer.first_delay = 60.0  # the background retry would come much later
    disk = FullDisk(instance.store.engine, match=CLOSING)
    disk.remaining = 1
    run_id = instance.runner.start("two")
    try:
        wait_for(lambda: instance.runner.closer.pending(run_id) is not None, 20, "a failed close")
        # start() closes what is waiting before it checks for a run in progress
        second = instance.runner.run_sync("two")
        assert instance.store.get_run(run_id).status == RunStatus.SUCCEEDED
        assert instance.store.get_run(second).status == RunStatus.SUCCEEDED
    finally:
        disk.remove()


def test_cancel_of_a_finished_run_is_still_a_conflict(instance, define, remotes) -> None:
    define(TWO_STEPS)
    run_id = instance.runner.run_sync("two")
    with pytest.raises(Conflict, match="succeeded"):
        instance.runner.cancel(run_id)
