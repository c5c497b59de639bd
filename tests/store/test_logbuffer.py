"""Log lines stored in batches: live within half a second, in order, none lost at close."""

from __future__ import annotations

from sqlalchemy import event
from waiting import wait_for

from mao.errors import StoreError
from mao.store.logbuffer import LogBuffer
from mao.store.store import Store


def _lines(store: Store, run_id: int) -> list[str]:
    return [row.line for row in store.logs(run_id)]


def test_lines_appear_within_half_a_second_in_few_transactions(store: Store) -> None:
    run = store.create_run("p", [{"name": "s", "tool": "t", "output_dataset": "d"}])
    commits = []
    event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    buffer = LogBuffer(store, max_delay=0.2)
    try:
        for i in range(50):
            buffer.add(run.id, "s", f"line {i}")
        wait_for(lambda: len(_lines(store, run.id)) >= 50, 0.5, "50 lines stored", 0.02)
        assert _lines(store, run.id) == [f"line {i}" for i in range(50)]
    finally:
        buffer.close()
    commits.clear()
    for i in range(50, 100):
        buffer.add(run.id, "s", f"line {i}")
    buffer.flush()
    assert len(commits) == 1, "fifty lines, one transaction"
    assert _lines(store, run.id) == [f"line {i}" for i in range(100)]


def test_a_full_buffer_is_written_at_once(store: Store) -> None:
    run = store.create_run("p", [{"name": "s", "tool": "t", "output_dataset": "d"}])
    buffer = LogBuffer(store, max_lines=10, max_delay=60)
    try:
        for i in range(25):
            buffer.add(run.id, None, f"{i}")
        assert _lines(store, run.id) == [str(i) for i in range(20)]
        assert buffer.waiting() == 5
    finally:
        buffer.close()
    assert _lines(store, run.id) == [str(i) for i in range(25)]


def test_lines_the_store_refuses_are_kept_and_written_later(store: Store) -> None:
    run = store.create_run("p", [{"name": "s", "tool": "t", "output_dataset": "d"}])
    buffer = LogBuffer(store, max_delay=60)
    original = store.append_logs
    calls = []

    def refuse(lines):
        calls.append(len(list(lines)))
        raise StoreError("disk full")

    store.append_logs = refuse  # type: ignore[method-assign]
    buffer.add(run.id, None, "first")
    buffer.add(run.id, None, "second")
    assert buffer.flush() is False
    assert buffer.waiting() == 2 and calls == [2]
    buffer.add(run.id, None, "third")
    store.append_logs = original  # type: ignore[method-assign]
    buffer.close()
    assert _lines(store, run.id) == ["first", "second", "third"]
