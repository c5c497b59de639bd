"""Control-metric values in the local store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from mao.status import RunStatus
from mao.store.metrics import MetricStore, series_key

STEPS = [{"name": "collect", "tool": "collector", "output_dataset": "raw"}]
AT = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)


def _run(store, status=RunStatus.SUCCEEDED, slot=None) -> int:
    run = store.create_run("p", STEPS, slot=slot)
    store.update_run(run.id, status=RunStatus.RUNNING)
    store.finish_run(run.id, status)
    return run.id


def test_the_migration_adds_the_table_and_the_suspect_flag(store):
    inspector = inspect(store.engine)
    assert "metric_values" in inspector.get_table_names()
    assert {"suspect", "suspect_detail"} <= {c["name"] for c in inspector.get_columns("step_runs")}
    run = store.create_run("p", STEPS)
    assert run.steps[0].suspect is False and run.steps[0].suspect_detail is None
    store.update_step(run.steps[0].id, suspect=True, suspect_detail="rows: 9 is above the maximum 5")
    step = store.get_run(run.id).steps[0]
    assert step.suspect is True and step.suspect_detail == "rows: 9 is above the maximum 5"


def test_upgrading_a_store_with_runs_keeps_them_and_downgrading_removes_the_table(store_url):
    from alembic import command

    from mao.store import Store, make_engine
    from mao.store.db import alembic_config

    engine = make_engine(store_url)
    try:
        command.upgrade(alembic_config(engine), "0003_offline")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (id, pipeline, status, trigger, created_at) VALUES (7, 'p', 'succeeded', 'manual', :at)"
                ),
                {"at": AT},
            )
            conn.execute(
                text(
                    "INSERT INTO step_runs (run_id, position, name, tool, status) "
                    "VALUES (7, 0, 'collect', 'collector', 'succeeded')"
                )
            )
        store = Store(engine)
        store.migrate()
        step = store.get_run(7).steps[0]
        assert step.suspect is False and step.suspect_detail is None
        MetricStore(store).record(7, "p", "collect", None, {"rows": 1})
        command.downgrade(alembic_config(engine), "0003_offline")
        assert "metric_values" not in inspect(engine).get_table_names()
        assert "suspect" not in {c["name"] for c in inspect(engine).get_columns("step_runs")}
        store.migrate()
        assert MetricStore(store).series("p") == []
    finally:
        engine.dispose()


def test_series_key_is_the_slot_or_the_time():
    assert series_key("2026-11-28T12:00:00Z", AT) == "2026-11-28T12:00:00Z"
    assert series_key(None, AT) == "2026-11-28T12:30:00Z"


def test_earlier_values_come_by_slot_from_succeeded_runs_only(store):
    metrics = MetricStore(store)
    for slot, value, status in (
        ("2026-11-28T10:00:00Z", 10.0, RunStatus.SUCCEEDED),
        ("2026-11-28T12:00:00Z", 12.0, RunStatus.SUCCEEDED),
        ("2026-11-28T11:00:00Z", 11.0, RunStatus.SUCCEEDED),  # a backfill recorded last
        ("2026-11-28T11:30:00Z", 99.0, RunStatus.FAILED),
    ):
        metrics.record(_run(store, status, slot), "p", "collect", slot, {"rows": value, "other": -value})
    current = store.create_run("p", STEPS, slot="2026-11-28T13:00:00Z").id
    metrics.record(current, "p", "collect", "2026-11-28T13:00:00Z", {"rows": 1000.0})

    def earlier(step: str, metric: str, slot: str | None, limit: int) -> list[float]:
        return metrics.earlier_many("p", step, {metric: limit}, current, slot)[metric]

    # slot order; the failed run and the current one left out
    assert earlier("collect", "rows", "2026-11-28T13:00:00Z", 10) == [10.0, 11.0, 12.0]
    assert earlier("collect", "rows", "2026-11-28T13:00:00Z", 2) == [11.0, 12.0]
    # a backfill of 11:00 sees only what came before its slot
    assert earlier("collect", "rows", "2026-11-28T11:00:00Z", 5) == [10.0, 11.0]
    assert earlier("collect", "other", "2026-11-28T13:00:00Z", 1) == [-12.0]
    assert earlier("analyse", "rows", None, 5) == []
    assert earlier("collect", "rows", None, 0) == []


def test_series_filters_limits_and_marks_suspect_values(store):
    metrics = MetricStore(store)
    first, second = _run(store), _run(store)
    metrics.record(first, "p", "collect", None, {"rows": 1.5, "size": 7}, at=AT)
    metrics.record(second, "p", "collect", "2026-11-28T13:00:00Z", {"rows": 3e300}, suspect={"rows"})
    metrics.record(second, "p", "analyse", "2026-11-28T13:00:00Z", {"rows": 2})

    rows = metrics.series("p", step="collect", metric="rows")
    assert [(r["run_id"], r["value"], r["suspect"], r["slot"]) for r in rows] == [
        (first, 1.5, False, None),
        (second, 3e300, True, "2026-11-28T13:00:00Z"),
    ]
    assert rows[0]["recorded_at"] == AT.isoformat()
    assert set(rows[0]) == {"run_id", "step", "metric", "value", "slot", "recorded_at", "suspect"}
    assert len(metrics.series("p")) == 4
    assert [r["step"] for r in metrics.series("p", metric="rows", limit=2)] == ["collect", "analyse"]
    assert metrics.series("other") == []


def test_values_go_with_their_run(store):
    metrics = MetricStore(store)
    run_id = _run(store)
    metrics.record(run_id, "p", "collect", None, {"rows": 1})
    from sqlalchemy import delete

    from mao.store.models import Run

    with store.session() as s:
        s.execute(delete(Run).where(Run.id == run_id))
    assert metrics.series("p") == []


def test_earlier_many_reads_each_metric_s_own_window(store):
    metrics = MetricStore(store)
    slots = [f"2026-11-28T{h:02d}:00:00Z" for h in (10, 12, 11, 9)]
    for i, slot in enumerate(slots):
        metrics.record(_run(store, slot=slot), "p", "collect", slot, {"a": float(i), "b": 10.0 + i, "c": -1.0})
    metrics.record(_run(store, RunStatus.FAILED), "p", "collect", None, {"a": 99.0})
    current = store.create_run("p", STEPS).id
    later = datetime(2026, 11, 29, tzinfo=UTC)  # an ad-hoc run after every slot
    many = metrics.earlier_many("p", "collect", {"a": 3, "b": 1, "c": 0, "d": 2}, current, None, later)
    assert many == {"a": [0.0, 2.0, 1.0], "b": [11.0], "c": [], "d": []}
    eleven = "2026-11-28T11:00:00Z"  # the slots up to 11:00, oldest first: 09:00, 10:00, 11:00
    assert metrics.earlier_many("p", "collect", {"a": 3, "b": 1}, current, eleven) == {
        "a": [3.0, 0.0, 2.0],
        "b": [12.0],
    }
    assert metrics.earlier_many("p", "collect", {"a": 10}, current, eleven) == {"a": [3.0, 0.0, 2.0]}
    assert metrics.earlier_many("p", "collect", {}, current, None) == {}
