"""Where an engine placed a step, shown to users: a step its engine holds queued shows
``queued`` (not running) with its job in GET /runs/{id}, ``maoctl runs show`` (table and
--json) and the run page; once started it shows the node; /metrics counts steps by engine."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
from maoctl_kit import run_maoctl
from served_kit import Served

from mao.config import Settings
from mao.executor.base import LogSink, Placement, StepSpec
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry
from tests.waiting import wait_for


class ClusterFake(FakeExecutor):
    """A fake engine that, like a cluster's, holds a step queued before it runs it on a node."""

    name = "kubernetes"


def test_a_queued_step_shows_queued_then_its_node_everywhere(tmp_path: Path, remotes: dict[str, Path]) -> None:
    release = threading.Event()

    def on_the_cluster(spec: StepSpec, on_log: LogSink) -> int:
        assert spec.on_placement is not None
        spec.on_placement(Placement("kubernetes", "queued", job="mao-1-gather-0001"))
        release.wait(60)
        spec.on_placement(Placement("kubernetes", "running", node="node-7", job="mao-1-gather-0001"))
        (spec.output_dir / "seen.txt").write_text("seen\n")
        return 0

    settings = Settings(instance_name="node-p", data_dir=tmp_path / "data", push_retries=1)
    inst = Instance(settings, registry=MemoryRegistry(), executor=ClusterFake({"img/cluster": on_the_cluster}))
    inst.setup()
    try:
        inst.catalog.add_tool(ToolIn(name="clustered", image="img/cluster"))
        inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(remotes["observations"]))))
        step = {"name": "gather", "tool": "clustered", "output_dataset": "observations"}
        inst.pipelines.init(PipelineIn.model_validate({"name": "collect", "steps": [step]}))
        with Served.api(instance=inst, port=0) as served, httpx.Client(base_url=served.url, timeout=30) as api:
            run_id = inst.runner.start("collect")
            wait_for(
                lambda: api.get(f"/runs/{run_id}").json()["steps"][0]["placement"] == "queued", 30, "a queued step"
            )
            shown = api.get(f"/runs/{run_id}").json()["steps"][0]
            assert (shown["status"], shown["executor"], shown["job"], shown["node"]) == (
                "running",
                "kubernetes",
                "mao-1-gather-0001",
                None,
            )
            code, out, err = run_maoctl(["--url", served.url, "runs", "show", str(run_id)])
            assert code == 0, err
            assert "queued" in out and "mao-1-gather-0001" in out and "Placement" in out
            code, out, err = run_maoctl(["--url", served.url, "runs", "show", str(run_id), "--json"])
            assert json.loads(out)["steps"][0]["placement"] == "queued"
            page = api.get(f"/ui/runs/{run_id}").text
            assert 'step-status">queued<' in page and "mao-1-gather-0001" in page

            release.set()
            ended = api.get(f"/runs/{run_id}", params={"wait": 30}).json()
            assert ended["status"] == "succeeded", ended["error"]
            shown = ended["steps"][0]
            assert (shown["placement"], shown["node"], shown["executor"]) == ("running", "node-7", "kubernetes")
            code, out, err = run_maoctl(["--url", served.url, "runs", "show", str(run_id)])
            assert "node-7" in out and "ended" in out
            page = api.get(f"/ui/runs/{run_id}").text
            assert "on kubernetes · node <code>node-7</code>" in page
            log = "\n".join(line["line"] for line in api.get(f"/runs/{run_id}/logs").json()["lines"])
            assert "queued on kubernetes, job mao-1-gather-0001" in log
            assert "running on kubernetes, node node-7, job mao-1-gather-0001" in log
            metrics = api.get("/metrics").text
            assert 'mao_steps_total{executor="kubernetes",status="succeeded"} 1.0' in metrics
    finally:
        release.set()
        inst.close()
