"""An in-process instance on SQLite, a memory registry, a fake executor and real git remotes."""

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
    """Appends a line to data/observations.csv, like a collector would."""
    path = spec.output_dir / "observations.csv"
    with path.open("a") as fh:
        fh.write(f"run {spec.run_id} value {spec.env.get('VALUE', '1')}\n")
    on_log(f"collected for run {spec.run_id}")
    return 0


def analyse(spec, on_log) -> int:
    rows = (spec.input_dir / "observations.csv").read_text().splitlines()
    (spec.output_dir / "summary.txt").write_text(f"rows: {len(rows)}\n")
    on_log(f"analysed {len(rows)} rows")
    return 0


def fail(spec, on_log) -> int:
    on_log("something went wrong")
    return 3


def leak_secret(spec, on_log) -> int:
    on_log(f"token is {spec.env['TOKEN']}")
    (spec.output_dir / "ok.txt").write_text("ok\n")
    return 0


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor({"img/collect": collect, "img/analyse": analyse, "img/fail": fail, "img/secret": leak_secret})


@pytest.fixture
def remotes(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("observations", "insights"):
        path = tmp_path / "remotes" / f"{name}.git"
        subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
        out[name] = path
    return out


@pytest.fixture
def instance(tmp_path: Path, executor: FakeExecutor, remotes: dict[str, Path]):
    settings = Settings(instance_name="node-a", data_dir=tmp_path / "data", push_retries=1)
    inst = Instance(settings, registry=MemoryRegistry(), executor=executor)
    inst.setup()
    inst.datasets.retry_delay = 0.01
    for tool, image in (
        ("collector", "img/collect"),
        ("analyser", "img/analyse"),
        ("failer", "img/fail"),
        ("secretive", "img/secret"),
    ):
        inst.catalog.add_tool(ToolIn(name=tool, image=image))
    for name, path in remotes.items():
        inst.catalog.add_dataset(DatasetIn(name=name, body=DatasetBody(master=str(path))))
    yield inst
    inst.close()


@pytest.fixture
def define(instance):
    def _define(body: dict) -> dict:
        return instance.pipelines.init(PipelineIn.model_validate(body))

    return _define
