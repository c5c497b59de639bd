"""Several in-process instances on one real etcd cluster (a prefix per test) and one bare git remote."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agreement_kit import IMAGE, write_metrics

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetIn, PipelineIn, ToolIn


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remotes" / "metrics.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
    return path


@pytest.fixture
def federation(etcd_cluster, etcd_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Instance]]:
    """``federation(name, tool=write_metrics)``: an instance on the shared etcd prefix, announced as live."""
    etcd_cluster.wait_healthy()
    made: list[Instance] = []

    def make(name: str, tool=write_metrics, **settings) -> Instance:
        inst = Instance(
            Settings(
                instance_name=name,
                data_dir=tmp_path / name,
                registry_backend="etcd",
                etcd_endpoints=etcd_cluster.endpoints,
                registry_prefix=etcd_prefix,
                push_retries=2,
                **settings,
            ),
            executor=FakeExecutor({IMAGE: tool}),
        )
        inst.setup()
        inst.datasets.retry_delay = 0.01
        inst.registry.put_with_ttl(f"instances/{name}", {"name": name}, 120)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.close()


@pytest.fixture
def register(remote: Path) -> Callable[..., None]:
    """``register(instance, policy="merge", deadline=600)``: tool, dataset and pipeline ``collect``."""

    def _register(inst: Instance, policy: str = "merge", deadline: int = 600) -> None:
        if "collector" not in inst.catalog.tools():
            inst.catalog.add_tool(ToolIn(name="collector", image=IMAGE))
        if "metrics" not in inst.catalog.datasets():
            inst.catalog.add_dataset(
                DatasetIn.model_validate(
                    {"name": "metrics", "body": {"master": str(remote), "policy": policy, "vote_deadline": deadline}}
                )
            )
        inst.pipelines.init(
            PipelineIn.model_validate(
                {"name": "collect", "steps": [{"name": "gather", "tool": "collector", "output_dataset": "metrics"}]}
            ),
        )

    return _register
