"""The coverage record follows run ends as events: a finished slot run is put in the index
from its ``RunFinished`` (the runner does not call the index), a run a stop interrupted too."""

from __future__ import annotations

from pathlib import Path

from mao.catalog import Catalog
from mao.config import Settings
from mao.events import RunFinished
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.keys import coverage_key
from mao.registry.memory import MemoryRegistry
from mao.status import RunStatus

SLOT = "2026-11-28T12:00:00Z"


def _instance(tmp_path: Path, registry: MemoryRegistry) -> Instance:
    inst = Instance(Settings(instance_name="a", data_dir=tmp_path / "a"), registry=registry, executor=FakeExecutor({}))
    inst.setup()
    return inst


def _end(status: RunStatus, run_id: int = 7, slot: str | None = SLOT) -> RunFinished:
    return RunFinished(run_id=run_id, pipeline="p", status=status, error=None, slot=slot, duration_s=1.0)


def test_a_slot_run_that_ends_is_recorded_from_its_event(tmp_path) -> None:
    registry = MemoryRegistry()
    inst = _instance(tmp_path, registry)
    try:
        inst.events.publish(_end(RunStatus.SUCCEEDED, slot=None))  # an ad-hoc run: no cell
        assert registry.list("coverage/") == {}
        inst.events.publish(_end(RunStatus.FAILED, run_id=7))
        cell = registry.get(coverage_key("p", SLOT, "a"))
        assert (cell["status"], cell["run_id"], cell["source"], cell["slot"]) == ("failed", 7, "run", SLOT)
        inst.events.publish(_end(RunStatus.SUCCEEDED, run_id=8))
        assert registry.get(coverage_key("p", SLOT, "a"))["status"] == "delivered"
        inst.events.publish(_end(RunStatus.TIMED_OUT, run_id=9))  # a failure never undoes a delivery
        assert registry.get(coverage_key("p", SLOT, "a"))["run_id"] == 8
    finally:
        inst.close()


def test_a_slot_run_a_stop_interrupted_counts_as_failed_at_the_next_start(tmp_path) -> None:
    registry = MemoryRegistry()
    Catalog(registry).add_tool(ToolIn(name="t", image="img"))
    Catalog(registry).add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(tmp_path / "out.git"))))
    inst = _instance(tmp_path, registry)
    definition = {"name": "p", "steps": [{"name": "s", "tool": "t", "output_dataset": "out"}]}
    inst.pipelines.init(PipelineIn.model_validate(definition))
    run = inst.store.create_run("p", inst.store.get_pipeline("p").steps, trigger="cron", slot=SLOT)
    inst.store.update_run(run.id, status="running")
    inst.close()  # the orchestrator stops with the run going

    again = _instance(tmp_path, registry)
    ends: list[RunFinished] = []
    again.events.subscribe(ends.append, RunFinished)
    try:
        again.start_background()
        assert again.store.get_run(run.id).status == "interrupted"
        assert [(e.run_id, e.status, e.duration_s) for e in ends] == [(run.id, RunStatus.INTERRUPTED, None)]
        cell = registry.get(coverage_key("p", SLOT, "a"))
        assert (cell["status"], cell["run_id"]) == ("failed", run.id)
    finally:
        again.stop_background()
        again.close()
