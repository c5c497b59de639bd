"""KubernetesExecutor against a Kubernetes API mock on loopback (kmock): the tests play the
Job controller and the kubelet. A real cluster is exercised by ``scripts/k8s-smoke``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mao.executor.base import Placement, StepResources, StepResult, StepSpec, StepTransfer
from mao.executor.kubernetes import KubernetesAccess, KubernetesExecutor
from mao.executor.kubernetes.manifest import memory_quantity
from mao.executor.kubernetes.watch import LogFollower, PodWatch
from mao.status import RunStatus
from tests.executor.kmock_kit import Cluster, running, serve, terminated, waiting
from tests.waiting import wait_for

TOKEN = "transfer-token-abc"
SECRET = "s3cr3t-value"
DIGEST = "docker.io/library/busybox@sha256:" + "a" * 64


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with serve() as served:
        yield served


@pytest.fixture
def executor(cluster: Cluster) -> Iterator[KubernetesExecutor]:
    engine = KubernetesExecutor.from_access(
        KubernetesAccess(url=cluster.url), instance="kube-test", unschedulable_timeout=1.0
    )
    yield engine
    engine.close()


def make_spec(tmp_path: Path, **kw: Any) -> StepSpec:
    options: dict[str, Any] = {
        "run_id": 7,
        "pipeline": "pipe",
        "step": "Count_Words",
        "image": "example.org/tools/count:1",
        "output_dir": tmp_path / "out",
        "command": "count --all 'two words'",
        "env": {"MAO_RUN_ID": "7", "API_KEY": SECRET},
        "secret_values": [SECRET],
        "timeout": 60.0,
        "instance": "kube-test",
        "transfer": StepTransfer(
            "http://head:8321/exchange/steps/k1/data", TOKEN, "http://head:8321/exchange/steps/k1/input"
        ),
    }
    options.update(kw)
    return StepSpec(**options)


class Step:
    """A step run in a thread, with what it logged and where it was placed."""

    def __init__(self, engine: KubernetesExecutor, spec: StepSpec) -> None:
        self.lines: list[str] = []
        self.placements: list[Placement] = []
        self.cancel = threading.Event()
        self.result: StepResult | None = None
        spec.on_placement = self.placements.append
        self._thread = threading.Thread(target=self._run, args=(engine, spec), daemon=True)
        self._thread.start()

    def _run(self, engine: KubernetesExecutor, spec: StepSpec) -> None:
        self.result = engine.run(spec, self.lines.append, self.cancel)

    def wait(self, timeout: float = 60) -> StepResult:
        self._thread.join(timeout)
        assert self.result is not None, "the step did not end"
        return self.result


def _container(job: dict[str, Any], name: str) -> dict[str, Any]:
    pod = job["spec"]["template"]["spec"]
    return next(c for c in pod["initContainers"] + pod["containers"] if c["name"] == name)


def _gone(cluster: Cluster) -> None:
    wait_for(lambda: not cluster.jobs() and not cluster.secrets(), 30, "the step's Job and Secret deleted")
    deletes = cluster.requests("batch/v1/jobs", "delete")
    assert deletes and all(r.params.get("propagationPolicy") == "Background" for r in deletes)


def test_a_step_runs_as_a_job_and_everything_is_deleted(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    cluster.logs(
        "2026-12-06T10:00:00.1Z counting\n2026-12-06T10:00:00.2Z key " + SECRET + "\n2026-12-06T10:00:01Z done\n"
    )
    spec = make_spec(tmp_path, resources=StepResources(cpus=0.5, memory="512m"))
    step = Step(executor, spec)
    job = cluster.wait_job()

    # the Job: never retried, bounded by the step's timeout, the tool's command as args
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 60
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert [c["name"] for c in pod["initContainers"]] == ["fetch", "step"]
    assert [c["name"] for c in pod["containers"]] == ["send"]
    tool = _container(job, "step")
    assert tool["image"] == spec.image and tool["args"] == ["count", "--all", "two words"]
    assert "command" not in tool
    assert tool["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in tool["volumeMounts"]}
    assert mounts == {"/usr/src/app/data": False, "/usr/src/app/input": True}
    # the token and the private variable only in the Secret; the tool never gets the token
    assert TOKEN not in json.dumps(job) and SECRET not in json.dumps(job)
    assert "MAO_TRANSFER_TOKEN" not in json.dumps(tool)
    assert {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": job["metadata"]["name"], "key": "API_KEY"}}} in (
        tool["env"]
    )
    fetch_env = {e["name"]: e for e in _container(job, "fetch")["env"]}
    assert fetch_env["MAO_DATA_URL"]["value"] == spec.transfer.data_url  # type: ignore[union-attr]
    assert fetch_env["MAO_INPUT_URL"]["value"] == spec.transfer.input_url  # type: ignore[union-attr]
    (secret,) = cluster.secrets()
    assert secret["stringData"] == {"MAO_TRANSFER_TOKEN": TOKEN, "API_KEY": SECRET}

    name = cluster.start_pod(job)
    wait_for(lambda: step.placements, 30, "the queued placement")
    assert step.placements[0] == Placement("kubernetes", "queued", job=job["metadata"]["name"])
    cluster.status(name, phase="Pending", initContainerStatuses=[terminated("fetch", 0), running("step")])
    wait_for(lambda: any(p.state == "running" for p in step.placements), 30, "the running placement")
    assert step.placements[-1] == Placement("kubernetes", "running", node="node-1", job=job["metadata"]["name"])
    cluster.status(
        name,
        phase="Succeeded",
        initContainerStatuses=[terminated("fetch", 0), terminated("step", 0, image_id="docker-pullable://" + DIGEST)],
        containerStatuses=[terminated("send", 0)],
    )
    result = step.wait()
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert (result.exit_code, result.node, result.image_digest) == (0, "node-1", DIGEST)
    assert step.lines == ["counting", "key ***", "done"]
    _gone(cluster)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("Error", "exit code 3"), ("OOMKilled", "exit code 3 (OOMKilled: the step ran out of memory, limit 64m)")],
)
def test_a_failing_tool_fails_the_step_with_its_exit_code(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path, reason: str, expected: str
) -> None:
    cluster.logs("")
    step = Step(executor, make_spec(tmp_path, resources=StepResources(memory="64m")))
    name = cluster.start_pod(cluster.wait_job())
    cluster.status(
        name, phase="Failed", initContainerStatuses=[terminated("fetch", 0), terminated("step", 3, reason=reason)]
    )
    result = step.wait()
    assert (result.status, result.exit_code, result.error) == (RunStatus.FAILED, 3, expected)
    _gone(cluster)


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"])
def test_an_image_that_cannot_be_pulled_fails_the_step_at_once(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path, reason: str
) -> None:
    step = Step(executor, make_spec(tmp_path))
    name = cluster.start_pod(cluster.wait_job())
    cluster.status(
        name,
        phase="Pending",
        initContainerStatuses=[terminated("fetch", 0), waiting("step", reason, "pull access denied")],
    )
    result = step.wait()
    assert result.status == RunStatus.FAILED
    assert result.error == f"image 'example.org/tools/count:1' cannot start: {reason}: pull access denied"
    _gone(cluster)


def test_a_missing_secret_fails_the_step_with_the_reason(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    step = Step(executor, make_spec(tmp_path))
    name = cluster.start_pod(cluster.wait_job())
    cluster.status(name, phase="Pending", initContainerStatuses=[waiting("fetch", "CreateContainerConfigError")])
    assert step.wait().error == "container fetch cannot start: CreateContainerConfigError"


def test_a_pod_no_node_can_take_fails_after_the_unschedulable_timeout(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    step = Step(executor, make_spec(tmp_path))
    name = cluster.start_pod(cluster.wait_job(), node=None)
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
    cluster.status(name, phase="Pending", conditions=[unschedulable])
    result = step.wait()
    assert result.status == RunStatus.FAILED
    assert result.error == "no node of the cluster can run the step (unschedulable for 1 s): 0/3 nodes"
    assert [p.state for p in step.placements] == ["queued"]
    _gone(cluster)


def test_a_cancel_of_a_queued_step_deletes_its_job(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    step = Step(executor, make_spec(tmp_path))
    cluster.start_pod(cluster.wait_job(), node=None)
    wait_for(lambda: step.placements, 30, "the queued placement")
    step.cancel.set()
    result = step.wait()
    assert result.status == RunStatus.CANCELLED
    assert result.error == "cancelled (the pod was still pending)"
    assert [p.state for p in step.placements] == ["queued"]
    _gone(cluster)


def test_a_running_step_past_its_timeout_is_timed_out(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    cluster.logs("")
    step = Step(executor, make_spec(tmp_path, timeout=1.5))
    job = cluster.wait_job()
    assert job["spec"]["activeDeadlineSeconds"] == 2
    name = cluster.start_pod(job)
    cluster.status(name, phase="Running", initContainerStatuses=[terminated("fetch", 0), running("step")])
    result = step.wait()
    assert result.status == RunStatus.TIMED_OUT
    assert (result.error or "").startswith("timed out after 1.5 s")  # "(the pod was still pending)" if slow
    _gone(cluster)


def test_a_job_that_makes_no_pod_times_out_saying_so(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    step = Step(executor, make_spec(tmp_path, timeout=1.0))
    name = cluster.wait_job()["metadata"]["name"]
    result = step.wait()
    assert result.status == RunStatus.TIMED_OUT
    assert result.error == f"timed out after 1 s (the Job made no pod: see kubectl describe job {name})"
    _gone(cluster)


def test_a_pod_past_the_jobs_deadline_is_timed_out(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    step = Step(executor, make_spec(tmp_path))
    name = cluster.start_pod(cluster.wait_job())
    cluster.status(name, phase="Failed", reason="DeadlineExceeded", message="Pod was active too long")
    assert step.wait().status == RunStatus.TIMED_OUT


def test_a_failed_fetch_says_so(cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path) -> None:
    cluster.logs("curl: (22) The requested URL returned error: 401\n")
    step = Step(executor, make_spec(tmp_path))
    name = cluster.start_pod(cluster.wait_job())
    cluster.status(name, phase="Failed", initContainerStatuses=[terminated("fetch", 22, reason="Error")])
    result = step.wait()
    assert result.error == (
        "fetching the step's data from the instance failed in the pod (exit code 22): "
        "curl: (22) The requested URL returned error: 401"
    )


def test_steps_that_cannot_be_asked_of_kubernetes_are_refused_before_any_job(
    cluster: Cluster, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    no_transfer = executor.run(make_spec(tmp_path, transfer=None), print)
    assert no_transfer.status == RunStatus.FAILED and "exchange_url" in (no_transfer.error or "")
    socket = executor.run(make_spec(tmp_path, docker_socket=True), print)
    assert "Docker socket" in (socket.error or "")
    partition = executor.run(make_spec(tmp_path, resources=StepResources(partition="gpu")), print)
    assert "Slurm setting" in (partition.error or "")
    memory = executor.run(make_spec(tmp_path, resources=StepResources(memory="lots")), print)
    assert "memory must be a size" in (memory.error or "")
    assert not cluster.requests("batch/v1/jobs", "post") and not cluster.secrets()


def test_remove_run_containers_deletes_only_this_instances_jobs_of_the_run(
    cluster: Cluster, executor: KubernetesExecutor
) -> None:
    def job(name: str, run: str, instance: str) -> None:
        labels = {"mao.executor": "kubernetes", "mao.run_id": run, "mao.instance": instance, "mao.job": name}
        meta = {"name": name, "namespace": "default", "labels": labels}
        cluster.http.post("/apis/batch/v1/namespaces/default/jobs", json={"metadata": meta}).raise_for_status()
        cluster.http.post("/api/v1/namespaces/default/secrets", json={"metadata": meta}).raise_for_status()

    job("mine-7", "7", "kube-test")
    job("mine-8", "8", "kube-test")
    job("theirs-7", "7", "other")
    assert executor.remove_run_containers(7) == 1
    assert sorted(j["metadata"]["name"] for j in cluster.jobs()) == ["mine-8", "theirs-7"]
    assert sorted(s["metadata"]["name"] for s in cluster.secrets()) == ["mine-8", "theirs-7"]
    assert executor.remove_run_containers() == 1
    assert [j["metadata"]["name"] for j in cluster.jobs()] == ["theirs-7"]


def test_ping_answers_and_an_unreachable_api_is_an_executor_error(cluster: Cluster) -> None:
    executor = KubernetesExecutor.from_access(KubernetesAccess(url=cluster.url, token="api-token"), namespace="lab")
    assert executor.ping() == {"engine": "kubernetes", "version": "unknown", "namespace": "lab"}
    (listed,) = cluster.requests("batch/v1/jobs", "list")
    assert listed.headers["Authorization"] == "Bearer api-token" and listed.namespace == "lab"
    from mao.errors import ExecutorError

    away = KubernetesExecutor.from_access(KubernetesAccess(url="http://127.0.0.1:9"))
    with pytest.raises(ExecutorError, match="http://127.0.0.1:9"):
        away.ping()


def test_a_kubeconfig_that_is_not_there_is_a_clear_error(tmp_path: Path) -> None:
    from mao.errors import ExecutorError

    with pytest.raises(ExecutorError, match="kubernetes_kubeconfig"):
        KubernetesExecutor.from_access(KubernetesAccess(kubeconfig=tmp_path / "nope"))


def test_a_kubeconfig_gives_its_server_and_token(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example.org:6443"}}],
                "users": [{"name": "u", "user": {"token": "tok"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "lab"}}],
                "current-context": "ctx",
            }
        )
    )
    engine = KubernetesExecutor.from_access(KubernetesAccess(kubeconfig=kubeconfig, context="ctx"))
    assert engine.api.configuration.host == "https://k8s.example.org:6443"
    assert engine.api.configuration.auth_settings()["BearerToken"]["value"] == "Bearer tok"


@pytest.mark.parametrize(
    ("size", "quantity"), [("512m", "512Mi"), ("2g", "2Gi"), ("1.5G", "1536Mi"), ("100k", "100Ki"), ("1000", "1000")]
)
def test_sizes_become_kubernetes_quantities(size: str, quantity: str) -> None:
    assert memory_quantity(size) == quantity


class _Response:
    """A streamed response: ``chunks``, then (for a watch) a read timeout."""

    def __init__(self, chunks: list[bytes], then_timeout: bool = False) -> None:
        self.chunks, self.then_timeout, self.status = chunks, then_timeout, 200
        self.data = b"".join(chunks)

    def stream(self, *args: Any, **kw: Any) -> Iterator[bytes]:
        yield from self.chunks
        if self.then_timeout:
            raise urllib3.exceptions.ReadTimeoutError(None, "", "read timed out")  # type: ignore[arg-type]

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _pod(name: str, job: str = "j1") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"mao.job": job}, "resourceVersion": "9"}, "status": {}}


def test_the_pod_watch_lists_again_when_the_api_forgot_its_version() -> None:
    calls: list[str] = []

    def list_namespaced_pod(namespace: str, **kw: Any) -> Any:
        if not kw.get("watch"):
            calls.append("list")
            listed = {"metadata": {"resourceVersion": "5"}, "items": [_pod(f"listed-{len(calls)}"), _pod("x", "j2")]}
            return SimpleNamespace(data=json.dumps(listed).encode())
        calls.append("watch")
        if calls.count("watch") == 1:
            raise ApiException(status=410, reason="Gone")
        event = {"type": "MODIFIED", "object": _pod("watched")}
        return _Response([json.dumps(event).encode() + b"\n"], then_timeout=True)

    core = SimpleNamespace(list_namespaced_pod=list_namespaced_pod, api_client=client.ApiClient())
    watch = PodWatch(core, "default", "mao.job=j1")
    watch.start()
    seen = [watch.changes.get(timeout=30)["metadata"]["name"] for _ in range(3)]
    watch.stop()
    watch.join(30)
    assert seen == ["listed-1", "listed-3", "watched"]  # the other Job's pod is not passed on
    assert calls[:3] == ["list", "watch", "list"] and watch.relists == 1


def test_a_broken_log_stream_is_resumed_without_repeating_lines() -> None:
    reads: list[dict[str, Any]] = []
    answers = [
        [b"2026-12-06T10:00:00.5Z one\n2026-12-06T10:00:01Z two\n"],
        [b"2026-12-06T10:00:00.5Z one\n2026-12-06T10:00:01Z two\n2026-12-06T10:00:01Z two again\n", b"2026-12-06"],
        [b"2026-12-06T10:00:01Z two\n2026-12-06T10:00:01Z two again\n2026-12-06T10:00:02.25Z three\n"],
    ]

    def read_namespaced_pod_log(pod: str, namespace: str, **kw: Any) -> Any:
        reads.append(kw)
        return _Response(answers[min(len(reads), len(answers)) - 1])

    lines: list[str] = []
    follower = LogFollower(
        SimpleNamespace(read_namespaced_pod_log=read_namespaced_pod_log), "ns", "p", "step", lines.append
    )
    follower.start()
    wait_for(lambda: len(reads) >= 3, 30, "three reads of the log")
    follower.ended.set()
    follower.join(30)
    assert lines == ["one", "two", "two again", "three"]
    assert reads[1]["since_time"] == "2026-12-06T10:00:01Z"


def test_an_instance_on_kubernetes_needs_the_url_its_pods_reach_it_by(tmp_path: Path) -> None:
    from mao.config import load_settings

    with pytest.raises(Exception, match="exchange_url"):
        load_settings(data_dir=tmp_path, executor="kubernetes")


def test_an_instance_builds_its_kubernetes_engine_from_its_settings(cluster: Cluster, tmp_path: Path) -> None:
    from mao.config import load_settings
    from mao.instance import Instance
    from mao.registry.memory import MemoryRegistry

    settings = load_settings(
        data_dir=tmp_path,
        instance_name="kube-a",
        executor="kubernetes",
        exchange_url="http://head:8321",
        kubernetes_url=cluster.url,
        kubernetes_token="k-token",
        kubernetes_namespace="lab",
    )
    inst = Instance(settings, registry=MemoryRegistry())
    engine = inst.executor
    assert isinstance(engine, KubernetesExecutor) and engine.transfers_data
    assert (engine.namespace, engine.instance) == ("lab", "kube-a")
    assert engine.ping()["namespace"] == "lab"
    assert inst.executor_for("kubernetes") is engine
    with pytest.raises(Exception, match="kubernetes_namespace"):
        load_settings(data_dir=tmp_path, kubernetes_namespace="Not A Namespace")
