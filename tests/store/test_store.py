"""The instance-local store on SQLite and PostgreSQL: migrations, pipelines, runs, logs, variables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from mao.errors import AlreadyExists, Conflict, NotFound, StoreError
from mao.models import StepIn
from mao.status import IllegalTransition
from mao.store import Store, make_engine
from mao.store.records import PipelineRecord
from mao.store.secrets import SecretKeys
from mao.store.store import as_utc

TABLES = {"pipelines", "runs", "step_runs", "log_lines", "private_variables", "registry_entries", "alembic_version"}

STEPS = [
    {"name": "collect", "tool": "collector", "output_dataset": "raw"},
    {"name": "analyse", "tool": "analyser", "input_dataset": "raw", "output_dataset": "insights"},
]


def _heads() -> list[str]:
    from alembic.script import ScriptDirectory

    from mao.store.db import MIGRATIONS

    return sorted(ScriptDirectory(str(MIGRATIONS)).get_heads())


def _version(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]


# ------------------------------------------------------------------------ migrations


def test_migrate_creates_the_schema(store_url: str) -> None:
    store = Store(make_engine(store_url))
    try:
        assert not set(inspect(store.engine).get_table_names()) & TABLES
        store.migrate()
        assert set(inspect(store.engine).get_table_names()) >= TABLES
        assert _version(store) == _heads()
    finally:
        store.close()


def test_migrate_is_idempotent_and_keeps_data(store_url: str) -> None:
    store = Store(make_engine(store_url))
    store.migrate()
    store.add_pipeline("kept", "", STEPS)
    store.migrate()
    store.close()

    reopened = Store(make_engine(store_url))  # a restarted instance migrates again
    try:
        reopened.migrate()
        assert _version(reopened) == _heads()
        assert [p.name for p in reopened.list_pipelines()] == ["kept"]
    finally:
        reopened.close()


def test_sqlite_store_creates_its_folder(tmp_path) -> None:
    path = tmp_path / "deep" / "er" / "mao.db"
    store = Store(make_engine(f"sqlite:///{path}"))
    try:
        store.migrate()
        assert path.is_file()
        store.ping()
    finally:
        store.close()


def test_plain_postgresql_url_uses_psycopg() -> None:
    engine = make_engine("postgresql://u@127.0.0.1:1/db")  # nothing connects yet
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


def test_invalid_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="invalid store URL"):
        make_engine("not a url")


def test_unreachable_database_is_a_store_error(free_port) -> None:
    store = Store(make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"))
    try:
        with pytest.raises(StoreError):
            store.ping()
        with pytest.raises(StoreError, match="cannot migrate"):
            store.migrate()
    finally:
        store.close()


# ------------------------------------------------------------------------ pipelines


def test_pipeline_crud(store: Store) -> None:
    created = store.add_pipeline("hub", "Collects the hub", STEPS)
    assert created.id and created.name == "hub"
    store.add_pipeline("art", "", STEPS[:1])

    got = store.get_pipeline("hub")
    assert isinstance(got, PipelineRecord) and all(isinstance(step, StepIn) for step in got.steps)
    assert (got.name, got.description, got.steps) == ("hub", "Collects the hub", [StepIn(**s) for s in STEPS])
    assert got.steps[1].input_dataset == "raw" and got.definition()["steps"][1]["input_dataset"] == "raw"
    assert as_utc(got.created_at) <= datetime.now(UTC)
    assert [p.name for p in store.list_pipelines()] == ["art", "hub"]
    assert store.find_pipeline("nope") is None

    store.delete_pipeline("art")
    assert [p.name for p in store.list_pipelines()] == ["hub"]
    with pytest.raises(NotFound):
        store.get_pipeline("art")
    with pytest.raises(NotFound):
        store.delete_pipeline("art")


def test_duplicate_pipeline_is_refused_and_store_still_works(store: Store) -> None:
    store.add_pipeline("hub", "first", STEPS)
    with pytest.raises(AlreadyExists):
        store.add_pipeline("hub", "second", STEPS)
    assert store.get_pipeline("hub").description == "first"
    store.add_pipeline("other", "", STEPS)
    assert len(store.list_pipelines()) == 2


# ------------------------------------------------------------------------ private variables


def test_private_variables(store: Store, tmp_path: Path) -> None:
    store.secrets = SecretKeys(tmp_path / "secrets.key")
    store.add_pipeline("hub", "", STEPS)
    store.add_pipeline("art", "", STEPS)
    store.set_private_variable("hub", "TOKEN", "s3cret")
    store.set_private_variable("hub", "USER", "me")
    store.set_private_variable("art", "TOKEN", "other")
    store.set_private_variable("hub", "TOKEN", "rotated")
    assert store.private_variables("hub") == {"TOKEN": "rotated", "USER": "me"}
    assert store.private_variables("art") == {"TOKEN": "other"}
    assert store.private_variables("nothing") == {}

    store.delete_pipeline("hub")  # a pipeline's secrets go with it
    assert store.private_variables("hub") == {}
    assert store.private_variables("art") == {"TOKEN": "other"}


# ------------------------------------------------------------------------ runs


def test_create_run_with_pending_steps(store: Store) -> None:
    run = store.create_run("hub", STEPS, trigger="cron")
    assert (run.pipeline, run.status, run.trigger) == ("hub", "pending", "cron")
    assert [(s.position, s.name, s.tool, s.status) for s in run.steps] == [
        (0, "collect", "collector", "pending"),
        (1, "analyse", "analyser", "pending"),
    ]
    assert run.steps[1].input_dataset == "raw" and run.steps[1].output_dataset == "insights"

    again = store.get_run(run.id)
    assert [s.name for s in again.steps] == ["collect", "analyse"]
    with pytest.raises(NotFound):
        store.get_run(run.id + 1000)


def test_one_active_run_per_pipeline(store: Store) -> None:
    first = store.create_run("hub", STEPS)
    with pytest.raises(Conflict):
        store.create_run("hub", STEPS)
    store.create_run("other", STEPS)  # other pipelines are not blocked
    store.update_run(first.id, status="running")
    store.finish_run(first.id, "succeeded")
    second = store.create_run("hub", STEPS)
    assert second.id != first.id


def test_update_and_finish_run(store: Store) -> None:
    run = store.create_run("hub", STEPS)
    started = datetime.now(UTC)
    store.update_run(run.id, status="running", started_at=started)
    collect, analyse = run.steps
    store.update_step(collect.id, status="running", started_at=started)
    store.update_step(
        collect.id,
        status="succeeded",
        exit_code=0,
        image_digest="sha256:abc",
        output_commit="a" * 40,
        details={"files": 3},
        pushed=True,
    )
    store.update_step(analyse.id, status="running", started_at=started)

    store.finish_run(run.id, "failed", error="analyser crashed")
    done = store.get_run(run.id)
    assert (done.status, done.error) == ("failed", "analyser crashed")
    assert done.finished_at is not None and abs(as_utc(done.started_at) - started) < timedelta(seconds=1)
    assert [(s.name, s.status) for s in done.steps] == [("collect", "succeeded"), ("analyse", "failed")]
    assert done.steps[0].exit_code == 0 and done.steps[0].details == {"files": 3} and done.steps[0].pushed is True
    assert done.steps[1].finished_at is not None


def test_cancelled_run_cancels_pending_steps(store: Store) -> None:
    run = store.create_run("hub", STEPS)
    store.update_step(run.steps[0].id, status="running")
    store.finish_run(run.id, "cancelled")
    assert [s.status for s in store.get_run(run.id).steps] == ["cancelled", "cancelled"]


def test_list_runs_newest_first_with_filters(store: Store) -> None:
    ids = []
    for status in ("succeeded", "failed", "succeeded"):
        run = store.create_run("hub", STEPS)
        store.update_run(run.id, status="running")
        store.finish_run(run.id, status)
        ids.append(run.id)
    other = store.create_run("art", STEPS)
    assert [r.id for r in store.list_runs()] == [other.id, *reversed(ids)]
    assert [r.id for r in store.list_runs(pipeline="hub")] == list(reversed(ids))
    assert [r.id for r in store.list_runs(pipeline="hub", status="failed")] == [ids[1]]
    assert [r.id for r in store.list_runs(limit=2)] == [other.id, ids[2]]
    assert [r.id for r in store.list_runs(limit=2, offset=2)] == [ids[1], ids[0]]  # the next page
    assert [r.id for r in store.list_runs(pipeline="hub", status="succeeded", limit=1, offset=1)] == [ids[0]]
    assert store.list_runs(limit=2, offset=4) == []
    assert [r.id for r in store.active_runs()] == [other.id]


def test_mark_interrupted_after_a_crash(store_url: str) -> None:
    store = Store(make_engine(store_url))
    store.migrate()
    running = store.create_run("hub", STEPS)
    store.update_run(running.id, status="running")
    store.update_step(running.steps[0].id, status="running")
    pending = store.create_run("art", STEPS)
    finished = store.create_run("done", STEPS)
    store.update_run(finished.id, status="running")
    store.finish_run(finished.id, "succeeded")
    store.close()  # the process dies here

    restarted = Store(make_engine(store_url))
    try:
        restarted.migrate()
        assert sorted(restarted.mark_interrupted()) == sorted([running.id, pending.id])
        for run_id in (running.id, pending.id):
            run = restarted.get_run(run_id)
            assert run.status == "interrupted" and run.error and run.finished_at is not None
        assert [s.status for s in restarted.get_run(running.id).steps] == ["interrupted", "cancelled"]
        assert restarted.get_run(finished.id).status == "succeeded"
        assert restarted.active_runs() == []
        assert restarted.mark_interrupted() == []
        restarted.create_run("hub", STEPS)  # the pipeline can run again
    finally:
        restarted.close()


def test_status_transitions_are_checked(store: Store) -> None:
    run = store.create_run("hub", STEPS)
    step = run.steps[0]
    with pytest.raises(IllegalTransition, match="pending to succeeded"):
        store.finish_run(run.id, "succeeded")  # a run that never ran cannot have succeeded
    with pytest.raises(IllegalTransition):
        store.update_step(step.id, status="timed_out")
    store.update_run(run.id, status="running")
    store.update_step(step.id, status="running")
    store.update_step(step.id, status="succeeded", exit_code=0)
    with pytest.raises(IllegalTransition, match="final"):
        store.update_step(step.id, status="failed")
    store.finish_run(run.id, "failed", "analyser crashed")
    store.finish_run(run.id, "failed", "analyser crashed")  # closing again as the same is harmless
    for illegal in ("running", "succeeded", "interrupted"):
        with pytest.raises(IllegalTransition, match="final"):
            store.update_run(run.id, status=illegal)
    with pytest.raises(IllegalTransition):
        store.finish_run(run.id, "cancelled")
    done = store.get_run(run.id)
    assert (done.status, [s.status for s in done.steps]) == ("failed", ["succeeded", "cancelled"])
    assert store.mark_interrupted() == []  # terminal runs are never re-marked
    with pytest.raises(NotFound):
        store.update_run(run.id + 99, status="running")


# ------------------------------------------------------------------------ logs


def test_logs_in_order_with_cursor_and_step_filter(store: Store) -> None:
    run = store.create_run("hub", STEPS)
    other = store.create_run("art", STEPS)
    store.append_log(run.id, None, "run started")
    for i in range(5):
        store.append_log(run.id, "collect", f"collect {i}")
    store.append_log(run.id, "analyse", "analyse 0 — ünïcode ✓")
    store.append_log(other.id, "collect", "other run")

    lines = store.logs(run.id)
    assert [line.line for line in lines] == [
        "run started",
        *(f"collect {i}" for i in range(5)),
        "analyse 0 — ünïcode ✓",
    ]
    assert [line.line for line in store.logs(run.id, step="analyse")] == ["analyse 0 — ünïcode ✓"]
    after = lines[2].id
    assert [line.line for line in store.logs(run.id, after=after)] == [line.line for line in lines[3:]]
    assert [line.line for line in store.logs(run.id, limit=2)] == ["run started", "collect 0"]
    assert [line.line for line in store.logs(other.id)] == ["other run"]
    assert all(line.ts is not None for line in lines)
