"""An in-process instance on SQLite, a memory registry that can be taken down, a fake executor
and a real git remote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry


def collect(spec, on_log) -> int:
    with (spec.output_dir / "observations.csv").open("a") as fh:
        fh.write(f"run {spec.run_id}\n")
    return 0


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remotes" / "observations.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
    return path


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry()


@pytest.fixture
def instance(tmp_path: Path, remote: Path, registry: MemoryRegistry):
    settings = Settings(instance_name="node-a", data_dir=tmp_path / "data", push_retries=0)
    inst = Instance(settings, registry=registry, executor=FakeExecutor({"img/collect": collect}))
    inst.setup()
    inst.catalog.add_tool(ToolIn(name="collector", image="img/collect"))
    inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(remote))))
    inst.pipelines.init(
        PipelineIn.model_validate(
            {"name": "collect", "steps": [{"name": "gather", "tool": "collector", "output_dataset": "observations"}]}
        ),
    )
    yield inst
    inst.close()
