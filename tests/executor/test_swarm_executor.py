"""SwarmExecutor against a real one-node swarm (MAO_TEST_SWARM_HOST): outcomes, logs, mounts,
limits, and nothing of a step left on the swarm afterwards (service, task or container)."""

from __future__ import annotations

import io
import os
import random
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

import docker
from mao.errors import ExecutorError
from mao.executor.base import INPUT_MOUNT, LABEL_INSTANCE, LABEL_RUN, OUTPUT_MOUNT, StepResources, StepResult, StepSpec
from mao.executor.swarm import LABEL_EXECUTOR, SwarmExecutor

pytestmark = pytest.mark.docker

Spec = Callable[..., StepSpec]


class Logs(list[str]):
    """An ``on_log`` sink; ``seen(text)`` tells whether a line with ``text`` has arrived."""

    def __call__(self, line: str) -> None:
        self.append(line)

    def seen(self, text: str) -> bool:
        return any(text in line for line in list(self))


@pytest.fixture(scope="session")
def swarm(swarm_host: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=swarm_host, timeout=30)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def step_image(swarm: docker.DockerClient) -> str:
    image = os.environ.get("MAO_TEST_IMAGE") or "mao/busybox:local"
    try:
        swarm.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {image} is not on the swarm engine (scripts/services.sh up imports it)", pytrace=False)
    return image


@pytest.fixture
def run_id() -> int:
    return random.randint(10**8, 2 * 10**9)


@pytest.fixture
def instance() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def executor(swarm_host: str, instance: str) -> Iterator[SwarmExecutor]:
    executor = SwarmExecutor.from_url(swarm_host, instance=instance, poll_interval=0.2)
    try:
        yield executor
    finally:
        executor.remove_run_containers()
        executor.close()


@pytest.fixture
def make_spec(tmp_path: Path, run_id: int, instance: str, step_image: str) -> Spec:
    def make(**fields: Any) -> StepSpec:
        values: dict[str, Any] = {
            "run_id": run_id,
            "pipeline": "pipe",
            "step": "step_1",
            "image": step_image,
            "output_dir": tmp_path / "out",
            "instance": instance,
            "timeout": 60.0,
        }
        values.update(fields)
        return StepSpec(**values)

    return make


def leftovers(client: docker.DockerClient, run_id: int) -> dict[str, list[str]]:
    """The run's services, tasks and containers still on the swarm."""
    label = f"{LABEL_RUN}={run_id}"
    return {
        "services": [s.name for s in client.services.list(filters={"label": label})],
        "tasks": [t["ID"] for t in client.api.tasks(filters={"label": label})],
        "containers": [c.name for c in client.containers.list(all=True, filters={"label": label})],
    }


NOTHING = {"services": [], "tasks": [], "containers": []}


def run_in_thread(executor: SwarmExecutor, spec: StepSpec, logs: Logs, cancel: threading.Event) -> dict[str, Any]:
    """Start ``executor.run`` in a thread; the returned dict gets ``result`` and ``thread``."""
    box: dict[str, Any] = {}

    def target() -> None:
        box["result"] = executor.run(spec, logs, cancel)

    box["thread"] = threading.Thread(target=target, daemon=True)
    box["thread"].start()
    return box


def finished(box: dict[str, Any], timeout: float = 60) -> StepResult:
    box["thread"].join(timeout)
    assert not box["thread"].is_alive(), "the step did not return"
    result: StepResult = box["result"]
    return result


# ------------------------------------------------------------------ outcomes


def test_success_writes_output_and_passes_log_lines(executor, make_spec: Spec, swarm, run_id) -> None:
    spec = make_spec(
        command=f"sh -c 'echo to-out; echo to-err >&2; mkdir -p {OUTPUT_MOUNT}/sub && echo hello > {OUTPUT_MOUNT}/sub/r.txt'"
    )
    logs = Logs()
    result = executor.run(spec, logs)
    assert result.status == "succeeded", result
    assert result.exit_code == 0 and result.error is None
    assert (spec.output_dir / "sub" / "r.txt").read_text() == "hello\n"
    assert sorted(logs) == ["to-err", "to-out"]
    assert result.image_digest and result.image_digest.startswith("sha256:")
    assert result.container_id
    assert leftovers(swarm, run_id) == NOTHING


def test_non_zero_exit_fails_with_its_code(executor, make_spec: Spec, swarm, run_id) -> None:
    logs = Logs()
    result = executor.run(make_spec(command=["sh", "-c", "echo before; exit 3"]), logs)
    assert result.status == "failed", result
    assert result.exit_code == 3
    assert result.error == "exit code 3"
    assert logs == ["before"]
    assert leftovers(swarm, run_id) == NOTHING


def test_timeout_stops_the_step(executor, make_spec: Spec, swarm, run_id) -> None:
    result = executor.run(make_spec(command="sh -c 'echo started; sleep 120'", timeout=1.5), Logs())
    assert result.status == "timed_out", result
    assert "timed out after 1.5 s" in (result.error or "")
    assert leftovers(swarm, run_id) == NOTHING


def test_cancel_while_running_stops_the_step(executor, make_spec: Spec, swarm, run_id) -> None:
    logs, cancel = Logs(), threading.Event()
    box = run_in_thread(executor, make_spec(command="sh -c 'echo started; sleep 120'"), logs, cancel)
    # the line arrives while the step runs: the log is followed, not read at the end
    wait_for(lambda: logs.seen("started"), 30, "the step's first log line")
    services = swarm.services.list(filters={"label": f"{LABEL_RUN}={run_id}"})
    assert len(services) == 1
    labels = services[0].attrs["Spec"]["Labels"]
    assert labels[LABEL_EXECUTOR] == "swarm" and labels[LABEL_INSTANCE] == executor.instance
    cancel.set()
    result = finished(box)
    assert result.status == "cancelled", result
    assert result.error == "cancelled"
    assert leftovers(swarm, run_id) == NOTHING


def test_missing_image_fails_with_a_clear_error(executor, make_spec: Spec, swarm, run_id) -> None:
    result = executor.run(make_spec(image=f"mao-test/nosuch-{uuid.uuid4().hex[:8]}:1", command="true"), Logs())
    assert result.status == "failed", result
    assert result.exit_code is None
    assert "not found" in (result.error or "") and "No such image" in (result.error or "")
    assert leftovers(swarm, run_id) == NOTHING


def test_missing_image_with_pull_policy_never_fails_before_any_service(
    executor, make_spec: Spec, swarm, run_id
) -> None:
    spec = make_spec(image="mao-test/nosuch:never", command="true", pull_policy="never")
    result = executor.run(spec, Logs())
    assert result.status == "failed", result
    assert "not found" in (result.error or "") and "'never'" in (result.error or "")
    assert leftovers(swarm, run_id) == NOTHING


def test_unknown_executable_fails(executor, make_spec: Spec, swarm, run_id) -> None:
    result = executor.run(make_spec(command="/no/such/program"), Logs())
    assert result.status == "failed", result
    assert "/no/such/program" in (result.error or "")
    assert leftovers(swarm, run_id) == NOTHING


# ------------------------------------------------------------------ what the container gets


def test_input_is_mounted_read_only(executor, make_spec: Spec, tmp_path: Path) -> None:
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    (input_dir / "data.csv").write_text("a,b\n")
    copy = executor.run(make_spec(input_dir=input_dir, command=f"cp {INPUT_MOUNT}/data.csv {OUTPUT_MOUNT}/"), Logs())
    assert copy.status == "succeeded", copy
    assert (tmp_path / "out" / "data.csv").read_text() == "a,b\n"

    logs = Logs()
    write = executor.run(make_spec(input_dir=input_dir, command=f"touch {INPUT_MOUNT}/new"), logs)
    assert write.status == "failed" and write.exit_code == 1, write
    assert logs.seen("Read-only file system"), logs
    assert sorted(p.name for p in input_dir.iterdir()) == ["data.csv"]


def test_env_reaches_the_step_and_secrets_are_masked(executor, make_spec: Spec) -> None:
    logs = Logs()
    spec = make_spec(
        env={"GREETING": "hello there", "TOKEN": "s3cr3t-value"},
        command=["sh", "-c", 'echo "$GREETING"; echo "token=$TOKEN"'],
        secret_values=["s3cr3t-value"],
    )
    assert executor.run(spec, logs).status == "succeeded"
    assert sorted(logs) == ["hello there", "token=***"]


@pytest.fixture(scope="session")
def entrypoint_image(swarm: docker.DockerClient, step_image: str) -> Iterator[str]:
    """An image whose ENTRYPOINT prints ``EP`` and its arguments."""
    tag = f"mao-test/entrypoint:{uuid.uuid4().hex[:8]}"
    dockerfile = f'FROM {step_image}\nENTRYPOINT ["echo", "EP"]\n'.encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    swarm.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    try:
        yield tag
    finally:
        swarm.images.remove(tag, force=True)


def test_command_is_given_to_the_entrypoint(executor, make_spec: Spec, entrypoint_image: str) -> None:
    logs = Logs()
    result = executor.run(make_spec(image=entrypoint_image, command="one 'two three'"), logs)
    assert result.status == "succeeded", result
    assert logs == ["EP one two three"]


def test_cpu_and_memory_limits_and_constraints(swarm_host: str, make_spec: Spec, instance: str) -> None:
    executor = SwarmExecutor.from_url(
        swarm_host, instance=instance, cpus=0.5, memory="64m", constraints=["node.role==manager"]
    )
    try:
        logs = Logs()
        command = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
        result = executor.run(make_spec(command=command), logs)
        assert result.status == "succeeded", result
        assert logs == [str(64 * 1024 * 1024), "50000"]
    finally:
        executor.close()


def test_a_steps_own_resources_come_before_the_instances(swarm_host: str, make_spec: Spec, instance: str) -> None:
    executor = SwarmExecutor.from_url(swarm_host, instance=instance, cpus=0.5, memory="64m")
    try:
        logs = Logs()
        command = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
        spec = make_spec(command=command, resources=StepResources(cpus=0.25, memory="32m"))
        result = executor.run(spec, logs)
        assert result.status == "succeeded", result
        assert logs == [str(32 * 1024 * 1024), "25000"]
    finally:
        executor.close()


def test_a_task_no_node_can_take_times_out_saying_why(
    swarm_host: str, make_spec: Spec, swarm, run_id, instance
) -> None:
    executor = SwarmExecutor.from_url(swarm_host, instance=instance, constraints=["node.labels.mao-test-none==yes"])
    try:
        result = executor.run(make_spec(command="true", timeout=1.0), Logs())
    finally:
        executor.close()
    assert result.status == "timed_out", result
    assert "still pending" in (result.error or ""), result
    assert leftovers(swarm, run_id) == NOTHING


# ------------------------------------------------------------------ refusals


def test_docker_socket_needs_permission(executor, make_spec: Spec, swarm, run_id) -> None:
    result = executor.run(make_spec(command="true", docker_socket=True), Logs())
    assert result.status == "failed" and "allow_docker_socket" in (result.error or "")
    assert leftovers(swarm, run_id) == NOTHING


def test_network_none_is_refused_with_what_to_use(swarm_host: str, make_spec: Spec, instance: str) -> None:
    executor = SwarmExecutor.from_url(swarm_host, instance=instance, network_mode="none")
    try:
        result = executor.run(make_spec(command="true"), Logs())
    finally:
        executor.close()
    assert result.status == "failed" and "'host'" in (result.error or ""), result


# ------------------------------------------------------------------ cleanup, ping


def test_remove_run_containers_removes_only_this_instances_services(
    executor, swarm_host: str, make_spec: Spec, swarm, run_id
) -> None:
    other = SwarmExecutor.from_url(swarm_host, instance=f"other-{uuid.uuid4().hex[:8]}")
    mine_logs, other_logs = Logs(), Logs()
    mine = run_in_thread(executor, make_spec(command="sh -c 'echo started; sleep 120'"), mine_logs, threading.Event())
    theirs_cancel = threading.Event()
    theirs = run_in_thread(
        other, make_spec(command="sh -c 'echo started; sleep 120'", instance=other.instance), other_logs, theirs_cancel
    )
    try:
        wait_for(lambda: mine_logs.seen("started") and other_logs.seen("started"), 30, "both steps running")
        assert executor.remove_run_containers(run_id) >= 1
        assert finished(mine).status != "succeeded"
        services = swarm.services.list(filters={"label": f"{LABEL_RUN}={run_id}"})
        assert [s.attrs["Spec"]["Labels"][LABEL_INSTANCE] for s in services] == [other.instance]
    finally:
        theirs_cancel.set()
        finished(theirs)
        other.close()
    assert leftovers(swarm, run_id) == NOTHING


def test_ping_names_a_swarm_manager(executor) -> None:
    answer = executor.ping()
    assert answer["engine"] == "docker" and answer["manager"] == "true" and answer["swarm"] == "manager"
    assert answer["version"]


def test_ping_of_an_engine_not_in_a_swarm_says_how_to_fix_it() -> None:
    url = os.environ.get("MAO_TEST_DOCKER_HOST")
    if not url:
        pytest.skip("MAO_TEST_DOCKER_HOST is not set")
    executor = SwarmExecutor.from_url(url)
    try:
        with pytest.raises(ExecutorError, match="docker swarm init"):
            executor.ping()
    finally:
        executor.close()


def test_an_unreachable_engine_is_an_executor_error() -> None:
    with pytest.raises(ExecutorError, match="nonexistent.sock"):
        SwarmExecutor.from_url("unix:///nonexistent.sock").ping()
