"""The two-step pipeline (an input dataset and an output dataset) on ``executor: kubernetes``,
its data travelling by commit through the instance's API: the cluster is a Kubernetes API mock
(kmock) and this test is its kubelet, doing what the step's pod does (the fetch container's
GETs with the step's token from the Secret, the tool, the send container's PUT). The commits
name the engine and the node; a failing tool and a cancel end the run with no Job or Secret
left. A real cluster is exercised by ``scripts/k8s-smoke``."""

from __future__ import annotations

import io
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_kit import bare_repo, free_port, git
from served_kit import Served
from waiting import wait_for

from mao.config import Settings
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry
from tests.executor.kmock_kit import Cluster, running, serve, terminated

IMAGE = "registry.example.org/demo-tool:1"
DIGEST = "registry.example.org/demo-tool@sha256:" + "b" * 64
PIPELINE = {
    "name": "demo",
    "steps": [
        {"name": "collect", "tool": "demo", "output_dataset": "observations", "cmd": "collect"},
        {
            "name": "analyse",
            "tool": "demo",
            "input_dataset": "observations",
            "output_dataset": "insights",
            "cmd": ["analyse"],
        },
    ],
}


def _tool(args: list[str], data: Path, input_dir: Path) -> int:
    """The demo tool, as the pod's step container runs it on the fetched trees."""
    if args == ["collect"]:
        with (data / "observations.csv").open("a") as rows:
            rows.write("reading,1\n")
        return 0
    if args == ["analyse"]:
        rows = (input_dir / "observations.csv").read_text().splitlines()
        (data / "summary.txt").write_text(f"observations: {len(rows)}\n")
        return 0
    return 3


class Kubelet(threading.Thread):
    """Plays the Job controller and the kubelet: each new Job gets a pod on ``node-1`` that
    fetches the step's trees, runs :func:`_tool` (or ``tool``), sends the result back and ends."""

    def __init__(self, cluster: Cluster, tool: Callable[[list[str], Path, Path], int] = _tool) -> None:
        super().__init__(name="kubelet", daemon=True)
        self.cluster = cluster
        self.tool = tool
        self.stop = threading.Event()
        self.hold = threading.Event()
        """Set: new pods stay pending (unscheduled)."""
        self.seen: set[str] = set()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stop.wait(0.05):
            for job in self.cluster.jobs():
                name = job["metadata"]["name"]
                if name in self.seen:
                    continue
                self.seen.add(name)
                try:
                    self._run_pod(job)
                except Exception as exc:  # reported by the test
                    self.errors.append(exc)

    def _run_pod(self, job: dict[str, Any]) -> None:
        c = self.cluster
        if self.hold.is_set():
            c.start_pod(job, node=None)
            return
        pod = c.start_pod(job)
        containers = {x["name"]: x for x in job["spec"]["template"]["spec"]["initContainers"]}
        env = {e["name"]: e.get("value") for e in containers["fetch"]["env"]}
        (secret,) = [s for s in c.secrets() if s["metadata"]["name"] == job["metadata"]["name"]]
        auth = {"Authorization": f"Bearer {secret['stringData']['MAO_TRANSFER_TOKEN']}"}
        c.status(pod, phase="Pending", initContainerStatuses=[running("fetch")])
        with tempfile.TemporaryDirectory() as tmp, httpx.Client(timeout=30) as http:
            data, input_dir = Path(tmp) / "data", Path(tmp) / "input"
            data.mkdir()
            input_dir.mkdir()
            _untar(http.get(env["MAO_DATA_URL"], headers=auth), data)
            if env["MAO_INPUT_URL"]:
                _untar(http.get(env["MAO_INPUT_URL"], headers=auth), input_dir)
            c.status(pod, phase="Pending", initContainerStatuses=[terminated("fetch", 0), running("step")])
            code = self.tool(list(containers["step"].get("args") or []), data, input_dir)
            step = terminated("step", code, "Completed" if code == 0 else "Error", "docker-pullable://" + DIGEST)
            if code:
                c.status(pod, phase="Failed", initContainerStatuses=[terminated("fetch", 0), step])
                return
            http.put(env["MAO_DATA_URL"], headers=auth, content=_tar(data)).raise_for_status()
        c.status(
            pod,
            phase="Succeeded",
            initContainerStatuses=[terminated("fetch", 0), step],
            containerStatuses=[terminated("send", 0)],
        )


def _untar(response: httpx.Response, dest: Path) -> None:
    response.raise_for_status()
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        tar.extractall(dest, filter="data")


def _tar(root: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name)
    return out.getvalue()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with serve() as served:
        served.logs("2026-12-06T10:00:00Z working\n")
        yield served


@contextmanager
def _instance(tmp_path: Path, cluster: Cluster) -> Iterator[Instance]:
    """An instance on the cluster whose API is served on loopback (the exchange's routes)."""
    port = free_port()
    inst = Instance(
        Settings(
            instance_name="node-kube",
            data_dir=tmp_path / "data",
            push_retries=0,
            executor="kubernetes",
            kubernetes_url=cluster.url,
            exchange_url=f"http://127.0.0.1:{port}",
        ),
        registry=MemoryRegistry(),
    )
    try:
        with Served.api(instance=inst, host="127.0.0.1", port=port):
            obs, ins = bare_repo(tmp_path / "obs.git"), bare_repo(tmp_path / "ins.git")
            inst.catalog.add_tool(ToolIn(name="demo", image=IMAGE))
            inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(obs))))
            inst.catalog.add_dataset(DatasetIn(name="insights", body=DatasetBody(master=str(ins))))
            inst.pipelines.init(PipelineIn.model_validate(PIPELINE))
            yield inst
    finally:
        inst.close()


def _trailers(repo: Path, commit: str) -> dict[str, str]:
    body = git(repo, "log", "-1", "--format=%B", commit)
    return dict(line.split(": ", 1) for line in body.splitlines() if line.startswith("Mao-"))


def _nothing_left(cluster: Cluster) -> None:
    wait_for(lambda: not cluster.jobs() and not cluster.secrets(), 30, "no Job and no Secret left")


def test_the_pipeline_runs_on_kubernetes_by_commit(tmp_path: Path, cluster: Cluster) -> None:
    kubelet = Kubelet(cluster)
    kubelet.start()
    try:
        with _instance(tmp_path, cluster) as inst:
            runs = [inst.store.get_run(inst.runner.run_sync("demo")) for _ in range(2)]
    finally:
        kubelet.stop.set()
        kubelet.join(30)
    assert not kubelet.errors, kubelet.errors
    for run in runs:
        assert run.status == "succeeded", (run.error, [s.error for s in run.steps])
    obs, ins = tmp_path / "obs.git", tmp_path / "ins.git"
    assert git(obs, "show", "ground-truth:observations.csv") == "reading,1\nreading,1\n"
    assert git(ins, "show", "ground-truth:summary.txt") == "observations: 2\n"
    collect, analyse = runs[-1].steps
    assert analyse.input_commit == collect.merge_commit
    trailers = _trailers(ins, analyse.output_commit)
    assert trailers["Mao-Executor"] == "kubernetes" and trailers["Mao-Node"] == "node-1"
    assert trailers["Mao-Input-Commit"] == collect.merge_commit and trailers["Mao-Image-Digest"] == DIGEST
    assert (analyse.executor, analyse.node, analyse.placement) == ("kubernetes", "node-1", "running")
    assert analyse.job and analyse.job.startswith(f"mao-{runs[-1].id}-analyse-")
    _nothing_left(cluster)


def test_a_failing_tool_and_a_cancel_end_the_run_and_leave_nothing(tmp_path: Path, cluster: Cluster) -> None:
    kubelet = Kubelet(cluster, tool=lambda args, data, input_dir: 3)
    kubelet.start()
    try:
        with _instance(tmp_path, cluster) as inst:
            failed = inst.store.get_run(inst.runner.run_sync("demo"))
            assert failed.status == "failed"
            assert failed.steps[0].error == "exit code 3" and failed.steps[0].exit_code == 3
            _nothing_left(cluster)
            assert git(tmp_path / "obs.git", "branch", "--list", "ground-truth") == ""

            kubelet.hold.set()
            run_id = inst.runner.start("demo")
            wait_for(lambda: inst.store.get_run(run_id).steps[0].placement == "queued", 30, "the step queued")
            inst.runner.cancel(run_id)
            wait_for(lambda: inst.store.get_run(run_id).status == "cancelled", 30, "the run cancelled")
            assert inst.store.get_run(run_id).steps[0].status == "cancelled"
            _nothing_left(cluster)
    finally:
        kubelet.stop.set()
        kubelet.join(30)
    assert not kubelet.errors, kubelet.errors
