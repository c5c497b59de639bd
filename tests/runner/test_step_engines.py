"""A step runs on the engine it names (``executor: swarm``), the others on the instance's."""

from __future__ import annotations

import pytest

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry
from tests.runner.conftest import collect


def _instance(tmp_path, remotes, **engines) -> Instance:
    settings = Settings(instance_name="node-a", data_dir=tmp_path / "data", push_retries=1)
    local = FakeExecutor({"img/collect": collect})
    inst = Instance(settings, registry=MemoryRegistry(), executor=local, engines=engines or None)
    inst.setup()
    inst.catalog.add_tool(ToolIn(name="collector", image="img/collect"))
    inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(remotes["observations"]))))
    return inst


def _define(inst: Instance, executor: str | None) -> None:
    step = {"name": "gather", "tool": "collector", "output_dataset": "observations"}
    if executor:
        step["executor"] = executor
    inst.pipelines.init(PipelineIn.model_validate({"name": "collect", "steps": [step]}))


def test_a_step_naming_the_swarm_runs_there_and_one_naming_nothing_on_the_instances_engine(tmp_path, remotes) -> None:
    swarm = FakeExecutor({"img/collect": collect})
    inst = _instance(tmp_path, remotes, swarm=swarm)
    try:
        _define(inst, "swarm")
        run = inst.store.get_run(inst.runner.run_sync("collect"))
        assert run.status == "succeeded", run.error
        assert [spec.step for spec in swarm.calls] == ["gather"]
        assert inst.executor.calls == []  # type: ignore[attr-defined]
        assert inst.executors() == [inst.executor, swarm]  # a start cleans both after a crash
    finally:
        inst.close()


def test_a_step_naming_the_swarm_on_an_instance_without_one_fails_saying_what_to_set(tmp_path, remotes) -> None:
    inst = _instance(tmp_path, remotes)
    try:
        _define(inst, "swarm")
        run = inst.store.get_run(inst.runner.run_sync("collect"))
        assert run.status == "failed"
        assert "swarm_host" in (run.error or "") + (run.steps[0].error or "")
        assert inst.executor.calls == []  # type: ignore[attr-defined]
    finally:
        inst.close()


def test_an_instance_on_the_swarm_needs_its_manager() -> None:
    with pytest.raises(ValueError, match="swarm_host"):
        Settings(instance_name="node-a", executor="swarm")
    assert Settings(instance_name="node-a", executor="swarm", swarm_host="unix:///run/swarm.sock").executor == "swarm"
    with pytest.raises(ValueError, match="network_mode"):
        Settings(instance_name="node-a", executor="swarm", swarm_host="unix:///run/swarm.sock", network_mode="none")


def test_a_step_names_only_an_engine_there_is() -> None:
    step = {"name": "gather", "tool": "collector", "output_dataset": "observations", "executor": "slurmish"}
    with pytest.raises(ValueError, match="executor"):
        PipelineIn.model_validate({"name": "collect", "steps": [step]})
