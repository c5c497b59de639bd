"""Recording many runs at once (a round of scheduler fires), on SQLite and PostgreSQL:
one transaction, each request's outcome per the overlap policy, the run in the way named."""

from __future__ import annotations

import pytest

from mao.errors import Conflict, NotFound
from mao.status import RunStatus
from mao.store import Store
from mao.store.records import RunRequest

STEPS = [
    {"name": "collect", "tool": "collector", "output_dataset": "raw"},
    {"name": "analyse", "tool": "analyser", "input_dataset": "raw", "output_dataset": "insights"},
]


@pytest.fixture
def defined(store: Store) -> Store:
    for name in ("a", "b", "c"):
        store.add_pipeline(name, "", STEPS)
    return store


def _slot(minute: int) -> str:
    return f"2026-11-28T12:{minute:02d}:00Z"


def test_a_batch_records_each_run_pending_with_its_slot_and_steps(defined: Store) -> None:
    requests = [RunRequest(name, "cron", _slot(0)) for name in ("a", "b", "c")]
    results = defined.create_runs(requests, overlap="skip")
    assert [r.outcome for r in results] == ["started"] * 3
    ids = [r.run_id for r in results]
    assert ids == sorted(ids) and len(set(ids)) == 3
    for result in results:
        run = defined.get_run(result.run_id)
        assert (run.pipeline, run.status, run.trigger, run.slot) == (
            result.request.pipeline,
            "pending",
            "cron",
            _slot(0),
        )
        assert [(s.position, s.name, s.status) for s in run.steps] == [
            (0, "collect", "pending"),
            (1, "analyse", "pending"),
        ]
        assert run.steps[1].input_dataset == "raw" and run.created_at is not None
        assert result.blocking is None and [s.name for s in result.steps] == ["collect", "analyse"]


def test_skip_records_nothing_behind_a_pending_or_running_run_and_names_it(defined: Store) -> None:
    [first] = defined.create_runs([RunRequest("a", "cron", _slot(0))], overlap="skip")
    results = defined.create_runs(
        [RunRequest("a", "cron", _slot(1)), RunRequest("b", "cron", _slot(1))], overlap="skip"
    )
    skipped, other = results
    assert (skipped.outcome, skipped.run_id, skipped.blocking) == ("skipped", None, first.run_id)
    assert isinstance(skipped.error, Conflict)
    assert f"run {first.run_id} (slot {_slot(0)}) is queued (pending)" in skipped.error.message
    assert other.outcome == "started"
    defined.update_run(first.run_id, status=RunStatus.RUNNING)
    [again] = defined.create_runs([RunRequest("a", "cron", _slot(2))], overlap="skip")
    assert again.outcome == "skipped" and f"run {first.run_id} (slot {_slot(0)}) is running" in again.error.message
    assert [r.slot for r in defined.list_runs("a")] == [_slot(0)]


def test_two_requests_of_one_pipeline_in_one_batch(defined: Store) -> None:
    one, two = defined.create_runs([RunRequest("a", "cron", _slot(0)), RunRequest("a", "cron", _slot(1))], "skip")
    assert one.outcome == "started" and two.outcome == "skipped" and two.blocking == one.run_id
    first, second = defined.create_runs([RunRequest("b", "cron", _slot(0)), RunRequest("b", "cron", _slot(1))], "queue")
    assert (first.outcome, second.outcome, second.blocking) == ("started", "queued", first.run_id)


def test_queue_records_behind_up_to_the_limit(defined: Store) -> None:
    results = defined.create_runs([RunRequest("a", "cron", _slot(m)) for m in range(4)], "queue", max_queued=2)
    assert [r.outcome for r in results] == ["started", "queued", "skipped", "skipped"]
    assert results[1].blocking == results[0].run_id
    assert "already has 2 runs queued (max_queued_runs 2)" in results[2].error.message
    assert sorted(r.slot for r in defined.list_runs("a")) == [_slot(0), _slot(1)]
    defined.update_run(results[0].run_id, status=RunStatus.RUNNING)
    defined.finish_run(results[0].run_id, RunStatus.SUCCEEDED)
    [later] = defined.create_runs([RunRequest("a", "cron", _slot(5))], "queue", max_queued=2)
    assert later.outcome == "queued" and later.blocking == results[1].run_id


def test_an_undefined_pipeline_and_refuse(defined: Store) -> None:
    ghost, ok = defined.create_runs([RunRequest("ghost"), RunRequest("a")], overlap="refuse")
    assert ghost.outcome == "skipped" and isinstance(ghost.error, NotFound) and "'ghost'" in ghost.error.message
    assert ok.outcome == "started" and ok.request.trigger == "manual" and defined.get_run(ok.run_id).slot is None
    [refused] = defined.create_runs([RunRequest("a")], overlap="refuse")
    assert refused.run_id is None and "already has a run in progress" in refused.error.message
    with pytest.raises(ValueError, match="overlap"):
        defined.create_runs([RunRequest("a")], overlap="sometimes")
    assert defined.create_runs([], overlap="skip") == []


def test_has_active_run(defined: Store) -> None:
    assert not defined.has_active_run("a")
    [run] = defined.create_runs([RunRequest("a")])
    assert defined.has_active_run("a") and not defined.has_active_run("b")
    defined.finish_run(run.run_id, RunStatus.CANCELLED)
    assert not defined.has_active_run("a")
