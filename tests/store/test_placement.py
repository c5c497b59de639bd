"""Where the engine placed each step: the step row's executor, node, job and placement state,
on SQLite and PostgreSQL, written by the one writer of step rows."""

from __future__ import annotations

from sqlalchemy import inspect

from mao.status import RunStatus
from mao.store import Store, make_engine
from mao.store.models import StepRun
from mao.store.steps import StepOutcome, StepRecord, StepRows

STEPS = [{"name": "count", "tool": "counter", "output_dataset": "words"}]
PLACEMENT_COLUMNS = {"executor", "node", "job", "placement"}


def test_the_migrated_step_rows_have_the_models_placement_columns(store_url: str) -> None:
    store = Store(make_engine(store_url))
    try:
        store.migrate()
        migrated = {column["name"] for column in inspect(store.engine).get_columns("step_runs")}
        modelled = {column.name for column in StepRun.__table__.columns}
        assert migrated >= PLACEMENT_COLUMNS
        assert modelled >= PLACEMENT_COLUMNS
        columns = inspect(store.engine).get_columns("step_runs")
        lengths = {c["name"]: c["type"].length for c in columns if c["name"] in PLACEMENT_COLUMNS}
        assert {name: StepRun.__table__.columns[name].type.length for name in PLACEMENT_COLUMNS} == {
            name: lengths[name] for name in PLACEMENT_COLUMNS
        }
    finally:
        store.close()


def test_a_step_is_queued_then_running_on_a_node_then_ends_there(store_url: str) -> None:
    store = Store(make_engine(store_url))
    try:
        store.migrate()
        run = store.create_run("words", STEPS)
        step_id = run.steps[0].id
        rows = StepRows(store)
        rows.started(step_id)
        rows.placed(step_id, "kubernetes", "queued", None, "mao-1-count-ab12cd34")
        step = store.get_run(run.id).steps[0]
        assert (step.status, step.placement, step.executor, step.node, step.job) == (
            RunStatus.RUNNING,
            "queued",
            "kubernetes",
            None,
            "mao-1-count-ab12cd34",
        )
        rows.placed(step_id, "kubernetes", "running", "node-1", "mao-1-count-ab12cd34")
        rows.finished(step_id, StepOutcome(RunStatus.SUCCEEDED), StepRecord(executor="kubernetes", node="node-1"))
        step = store.get_run(run.id).steps[0]
        assert (step.status, step.placement, step.executor, step.node) == (
            RunStatus.SUCCEEDED,
            "running",
            "kubernetes",
            "node-1",
        )
    finally:
        store.close()


def test_a_step_on_an_engine_that_does_not_queue_records_its_engine_at_its_end(store_url: str) -> None:
    store = Store(make_engine(store_url))
    try:
        store.migrate()
        run = store.create_run("words", STEPS)
        step_id = run.steps[0].id
        StepRows(store).started(step_id)
        StepRows(store).finished(step_id, StepOutcome(RunStatus.FAILED, "exit code 1"), StepRecord(executor="docker"))
        step = store.get_run(run.id).steps[0]
        assert (step.executor, step.placement, step.node, step.job) == ("docker", None, None, None)
    finally:
        store.close()
