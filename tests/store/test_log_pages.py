"""Stored log lines: each cut to the line limit with its size noted, and read in pages from
either end (the run page shows the last ones and loads earlier ones on demand)."""

from __future__ import annotations

from mao.store.logbuffer import LogBuffer
from mao.store.store import Store
from mao.untrusted import MAX_LOG_LINE_BYTES

EIGHT_MIB = 8 * 1024 * 1024
NOTE = f"… [truncated: {EIGHT_MIB} bytes in total]"
CUT = "z" * (MAX_LOG_LINE_BYTES - len(NOTE.encode())) + NOTE


def _run(store: Store, pipeline: str = "p") -> int:
    return store.create_run(pipeline, [{"name": "s", "tool": "t", "output_dataset": "d"}]).id


def test_a_long_line_is_stored_cut_with_its_size(store: Store) -> None:
    run_id = _run(store)
    store.append_log(run_id, "s", "z" * EIGHT_MIB)
    buffer = LogBuffer(store)
    try:
        buffer.add(run_id, "s", "z" * EIGHT_MIB)
        buffer.add(run_id, "s", "short")
    finally:
        buffer.close()
    assert [row.line for row in store.logs(run_id)] == [CUT, CUT, "short"]


def test_a_waiting_long_line_is_held_cut(store: Store) -> None:
    buffer = LogBuffer(store, max_delay=3600)  # nothing flushes it while the test looks
    try:
        buffer.add(_run(store), "s", "z" * EIGHT_MIB)
        assert [entry[2] for entry in buffer._lines] == [CUT]
    finally:
        buffer.close()


def test_pages_from_the_end_and_before_a_line(store: Store) -> None:
    run_id = _run(store)
    store.append_logs([(run_id, "a" if i % 2 else "b", f"line {i}") for i in range(10)])
    rows = store.logs(run_id)
    ids = [row.id for row in rows]

    last = store.logs(run_id, limit=3, tail=True)
    assert [row.line for row in last] == ["line 7", "line 8", "line 9"]
    earlier = store.logs(run_id, limit=3, tail=True, before=last[0].id)
    assert [row.line for row in earlier] == ["line 4", "line 5", "line 6"]
    assert [row.line for row in store.logs(run_id, before=ids[2])] == ["line 0", "line 1"]
    assert [row.line for row in store.logs(run_id, step="a", limit=2, tail=True)] == ["line 7", "line 9"]
    assert [row.line for row in store.logs(run_id, after=ids[3], before=ids[6])] == ["line 4", "line 5"]

    assert store.has_logs(run_id, below=ids[1])
    assert not store.has_logs(run_id, below=ids[0])
    assert store.has_logs(run_id, above=ids[8]) and not store.has_logs(run_id, above=ids[9])
    assert not store.has_logs(run_id, "a", below=ids[1])
    assert not store.has_logs(_run(store, "other"))
