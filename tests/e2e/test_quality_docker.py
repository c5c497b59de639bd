"""Control metrics and insights written by a real container (busybox on the Docker Engine)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e_kit import bare_repo, git

from mao.config import Settings
from mao.insights import get_insight
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.store.metrics import MetricStore

pytestmark = pytest.mark.docker

SCRIPT = (
    'cd /usr/src/app/data && echo "run $MAO_RUN_ID" >> rows.csv && '
    "rows=$(wc -l < rows.csv) && "
    'printf \'{"rows": %s, "temperature": %s}\' "$rows" "$TEMP" > mao-metrics.json && '
    'printf \'{"rows": %s, "instance": "%s"}\' "$rows" "$MAO_INSTANCE" > insights.json'
)


def test_a_container_writes_metrics_and_an_insight(tmp_path: Path, docker_host: str):
    image = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
    remote = bare_repo(tmp_path / "obs.git")
    inst = Instance(
        Settings(instance_name="dock-q", data_dir=tmp_path / "data", docker_host=docker_host, pull_policy="never")
    )
    inst.setup()
    try:
        inst.catalog.add_tool(ToolIn(name="counter", image=image))
        inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(remote))))
        step = {
            "name": "count",
            "tool": "counter",
            "output_dataset": "observations",
            "cmd": ["sh", "-c", SCRIPT],
            "env": {"TEMP": "20"},
            "metrics": {"temperature": {"range": {"min": -50, "max": 60}}},
        }
        inst.pipelines.init(PipelineIn.model_validate({"name": "q", "steps": [step]}))
        first = inst.store.get_run(inst.runner.run_sync("q"))
        assert first.status == "succeeded", first.error
        assert first.steps[0].suspect is False

        step["env"] = {"TEMP": "75"}
        inst.pipelines.remove("q", unregister=True)
        inst.pipelines.init(PipelineIn.model_validate({"name": "q", "steps": [step]}))
        second = inst.store.get_run(inst.runner.run_sync("q"))
        assert second.status == "succeeded", second.error
        assert second.steps[0].suspect_detail == "temperature: 75 is above the maximum 60"

        series = MetricStore(inst.store).series("q")
        assert [(p["metric"], p["value"], p["suspect"]) for p in series] == [
            ("rows", 1, False),
            ("temperature", 20, False),
            ("rows", 2, False),
            ("temperature", 75, True),
        ]
        insight = get_insight(inst.registry, "q", "count")
        assert insight["value"] == {"rows": 2, "instance": "dock-q"}
        assert insight["run_id"] == second.id and insight["commit"] == second.steps[0].output_commit
        # only the tool's data went into the dataset
        assert git(remote, "ls-tree", "-r", "--name-only", "ground-truth").split() == ["rows.csv"]
        assert git(remote, "show", "ground-truth:rows.csv") == f"run {first.id}\nrun {second.id}\n"
    finally:
        inst.close()
