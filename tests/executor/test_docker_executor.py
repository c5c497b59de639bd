"""DockerExecutor against a real engine: mounts, logs, exit codes, timeouts, cleanup."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker.errors
import pytest
from waiting import wait_for

import docker
from mao.errors import ExecutorError
from mao.executor.base import (
    DOCKER_SOCKET,
    INPUT_MOUNT,
    LABEL_INSTANCE,
    LABEL_RUN,
    OUTPUT_MOUNT,
    StepResources,
    StepSpec,
)
from mao.executor.docker import DockerExecutor
from mao.untrusted import MAX_LOG_LINE_BYTES

pytestmark = pytest.mark.docker

Spec = Callable[..., StepSpec]

UNREACHABLE = "unix:///nonexistent.sock"
NO_REGISTRY = "127.0.0.1:9"  # nothing listens there: a pull fails at once, on loopback


class Logs(list[str]):
    """An ``on_log`` sink that remembers each line and when it arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def __call__(self, line: str) -> None:
        self.times.append(time.monotonic())
        self.append(line)


def assert_gone(client: docker.DockerClient, container_id: str | None) -> None:
    assert container_id
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container_id)


# ------------------------------------------------------------------ success, mounts


def test_success_writes_to_the_output_mount(executor: DockerExecutor, make_spec: Spec, client, run_containers) -> None:
    spec = make_spec(command=f"sh -c 'mkdir -p {OUTPUT_MOUNT}/sub && echo hello > {OUTPUT_MOUNT}/sub/result.txt'")
    logs = Logs()
    result = executor.run(spec, logs)
    assert result.status == "succeeded", result
    assert result.exit_code == 0 and result.error is None
    assert (spec.output_dir / "sub" / "result.txt").read_text() == "hello\n"
    assert result.image_digest and "sha256:" in result.image_digest
    assert_gone(client, result.container_id)
    assert run_containers() == []


def test_image_digest_is_the_image_id_without_repo_digests(executor: DockerExecutor, make_spec: Spec, client) -> None:
    spec = make_spec(command="true")
    image = client.images.get(spec.image)
    expected = image.attrs["RepoDigests"][0] if image.attrs.get("RepoDigests") else image.id
    assert executor.run(spec, Logs()).image_digest == expected


def test_input_mount_is_readable_and_read_only(executor: DockerExecutor, make_spec: Spec, tmp_path: Path) -> None:
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    (input_dir / "data.csv").write_text("a,b\n1,2\n")

    copy = executor.run(make_spec(input_dir=input_dir, command=f"cp {INPUT_MOUNT}/data.csv {OUTPUT_MOUNT}/"), Logs())
    assert copy.status == "succeeded", copy
    assert (tmp_path / "out" / "data.csv").read_text() == "a,b\n1,2\n"

    logs = Logs()
    write = executor.run(make_spec(input_dir=input_dir, command=f"sh -c 'echo x > {INPUT_MOUNT}/new'"), logs)
    assert write.status == "failed" and write.exit_code != 0, write
    assert any("Read-only file system" in line for line in logs), logs
    assert sorted(p.name for p in input_dir.iterdir()) == ["data.csv"]


def test_output_directory_is_created(executor: DockerExecutor, make_spec: Spec, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er" / "out"
    result = executor.run(make_spec(output_dir=out, command=f"touch {OUTPUT_MOUNT}/x"), Logs())
    assert result.status == "succeeded", result
    assert (out / "x").exists()


def test_env_is_passed(executor: DockerExecutor, make_spec: Spec) -> None:
    logs = Logs()
    spec = make_spec(
        env={"GREETING": "hello there", "EMPTY": ""}, command=["sh", "-c", 'echo "$GREETING|${EMPTY-unset}"']
    )
    assert executor.run(spec, logs).status == "succeeded"
    assert logs == ["hello there|"]


@pytest.mark.parametrize(
    "command",
    [
        "sh -c 'echo \"$0|$1\"' 'a  b' c",
        ["sh", "-c", 'echo "$0|$1"', "a  b", "c"],
    ],
    ids=["string", "list"],
)
def test_command_string_or_list(executor: DockerExecutor, make_spec: Spec, command) -> None:
    logs = Logs()
    assert executor.run(make_spec(command=command), logs).status == "succeeded"
    assert logs == ["a  b|c"]


def test_unbalanced_quotes_fail_without_a_container(executor: DockerExecutor, make_spec: Spec, run_containers) -> None:
    result = executor.run(make_spec(command="echo 'oops"), Logs())
    assert result.status == "failed" and "cannot split command" in (result.error or "")
    assert result.container_id is None and run_containers() == []


@pytest.fixture
def derived_image(client: docker.DockerClient, step_image: str) -> Iterator[Callable[..., str]]:
    """``derived_image(*changes)``: the test image with Dockerfile-like changes, made by
    committing a created container (no build, no registry)."""
    made: list[str] = []

    def derive(*changes: str) -> str:
        name = f"mao-test/derived:{uuid.uuid4().hex[:8]}"
        repo, tag = name.split(":")
        base = client.containers.create(step_image, ["true"], network_mode="none")
        try:
            base.commit(repository=repo, tag=tag, changes=list(changes))
        finally:
            base.remove(force=True)
        made.append(name)
        return name

    try:
        yield derive
    finally:
        for name in made:
            client.images.remove(name, force=True)


def test_no_command_runs_the_image_default(executor: DockerExecutor, make_spec: Spec, derived_image) -> None:
    image = derived_image('CMD ["echo", "from the image"]')
    logs = Logs()
    result = executor.run(make_spec(image=image, command=None), logs)
    assert result.status == "succeeded", result
    assert logs == ["from the image"]


# ------------------------------------------------------------------ logs


def test_log_lines_arrive_in_order_while_running(executor: DockerExecutor, make_spec: Spec) -> None:
    script = 'i=1; while [ $i -le 200 ]; do echo "line $i"; i=$((i+1)); done; sleep 1.5; printf "last, no newline"'
    logs = Logs()
    started = time.monotonic()
    result = executor.run(make_spec(command=["sh", "-c", script]), logs)
    ended = time.monotonic()
    assert result.status == "succeeded", result
    assert logs == [f"line {i}" for i in range(1, 201)] + ["last, no newline"]
    # streamed, not collected at the end: the first lines came before the sleep was over
    assert logs.times[0] - started < (ended - started) - 1.0


def test_streams_silent_longer_than_the_client_timeout_stay_live(engine, instance: str, make_spec: Spec) -> None:
    """Podman answers a log request only with the first output: the stream is asked again."""
    probe = docker.DockerClient(base_url=engine.url)  # the API version, asked with the usual timeout
    version = probe.api.api_version
    probe.close()
    client = docker.DockerClient(base_url=engine.url, version=version, timeout=1)
    executor = DockerExecutor(client, instance=instance)
    try:
        logs = Logs()
        started = time.monotonic()
        result = executor.run(make_spec(command=["sh", "-c", "sleep 1.5; echo late; sleep 1.5"]), logs)
        ended = time.monotonic()
        assert result.status == "succeeded", result
        assert logs == ["late"]
        assert logs.times[0] < ended - 1.0, "the line came only at the end"
        assert logs.times[0] - started > 1.0
    finally:
        executor.close()


def test_stdout_and_stderr_lines_are_never_mixed(executor: DockerExecutor, make_spec: Spec) -> None:
    logs = Logs()
    script = "echo out1; echo err1 >&2; printf out-partial; echo err2 >&2"
    assert executor.run(make_spec(command=["sh", "-c", script]), logs).status == "succeeded"
    assert sorted(logs) == ["err1", "err2", "out-partial", "out1"]
    assert logs.index("err1") < logs.index("err2") and logs.index("out1") < logs.index("out-partial")


def test_secrets_are_masked_in_logs(executor: DockerExecutor, make_spec: Spec) -> None:
    logs = Logs()
    spec = make_spec(
        env={"TOKEN": "s3cr3t-t0ken", "PASSWORD": "hunter2"},
        secret_values=["s3cr3t-t0ken", "hunter2"],
        command=["sh", "-c", 'echo "token=$TOKEN"; echo "pw: $PASSWORD and $TOKEN" >&2'],
    )
    assert executor.run(spec, logs).status == "succeeded"
    assert sorted(logs) == ["pw: *** and ***", "token=***"]
    assert not any("s3cr3t" in line or "hunter2" in line for line in logs)


def test_a_long_line_is_cut_as_it_is_read(executor: DockerExecutor, make_spec: Spec) -> None:
    logs = Logs()
    script = "head -c 8388608 /dev/zero | tr '\\0' x; echo; echo after"
    assert executor.run(make_spec(command=["sh", "-c", script]), logs).status == "succeeded"
    assert len(logs) == 2 and logs[1] == "after"
    note = "… [truncated: 8388608 bytes in total]"
    assert logs[0] == "x" * (MAX_LOG_LINE_BYTES - len(note.encode())) + note


def test_a_failing_log_sink_does_not_break_the_step(executor: DockerExecutor, make_spec: Spec, run_containers) -> None:
    def broken(line: str) -> None:
        raise RuntimeError("sink is down")

    assert executor.run(make_spec(command="echo hi"), broken).status == "succeeded"
    assert run_containers() == []


# ------------------------------------------------------------------ outcomes


def test_non_zero_exit_is_failed_with_the_code(executor: DockerExecutor, make_spec: Spec, client) -> None:
    result = executor.run(make_spec(command=["sh", "-c", "echo about to fail; exit 3"]), Logs())
    assert result.status == "failed"
    assert result.exit_code == 3 and result.error == "exit code 3"
    assert_gone(client, result.container_id)


def test_timeout_kills_the_container(executor: DockerExecutor, make_spec: Spec, client, run_containers) -> None:
    started = time.monotonic()
    result = executor.run(make_spec(command="sleep 30", timeout=1), Logs())
    assert result.status == "timed_out", result
    assert time.monotonic() - started < 10
    assert "timed out" in (result.error or "")
    assert_gone(client, result.container_id)
    assert run_containers() == []


def test_cancel_kills_the_container_and_labels_are_set_while_running(
    executor: DockerExecutor, make_spec: Spec, client, run_containers
) -> None:
    spec = make_spec(command=["sh", "-c", "echo started; sleep 30"], step="long", pipeline="pipe-x")
    cancel = threading.Event()
    logs = Logs()
    box: dict[str, object] = {}
    worker = threading.Thread(target=lambda: box.update(result=executor.run(spec, logs, cancel)))
    worker.start()
    try:
        wait_for(lambda: "started" in logs, timeout=15, message="the step to start")
        (running,) = run_containers()
        assert spec.labels.items() <= running.labels.items()  # the image may add its own
        assert running.status == "running"
        cancelled_at = time.monotonic()
        cancel.set()
        worker.join(15)
        assert not worker.is_alive()
        assert time.monotonic() - cancelled_at < 10
    finally:
        cancel.set()
        worker.join(30)
    result = box["result"]
    assert result.status == "cancelled", result
    assert_gone(client, result.container_id)
    assert run_containers() == []


def test_cancel_before_start_starts_nothing(executor: DockerExecutor, make_spec: Spec, run_containers) -> None:
    cancel = threading.Event()
    cancel.set()
    result = executor.run(make_spec(command="echo never"), Logs(), cancel)
    assert result.status == "cancelled" and result.container_id is None
    assert run_containers() == []


# ------------------------------------------------------------------ images, engine


def test_missing_image_with_pull_never_fails(executor: DockerExecutor, make_spec: Spec, run_containers) -> None:
    result = executor.run(make_spec(image="mao-test/missing:none", pull_policy="never"), Logs())
    assert result.status == "failed"
    assert (result.error or "").startswith("image 'mao-test/missing:none' not found: ")
    assert "never" in (result.error or "")
    assert run_containers() == []


def test_missing_image_that_cannot_be_pulled_fails(executor: DockerExecutor, make_spec: Spec) -> None:
    image = f"{NO_REGISTRY}/mao-test/missing:none"
    result = executor.run(make_spec(image=image, pull_policy="if-not-present", command="true"), Logs())
    assert result.status == "failed"
    assert (result.error or "").startswith(f"image '{image}' not found: pull failed")


def test_pull_policy_always_pulls_even_when_present(
    executor: DockerExecutor, make_spec: Spec, client, step_image: str
) -> None:
    name = f"{NO_REGISTRY}/mao-test/local-only:{uuid.uuid4().hex[:8]}"
    repo, tag = name.rsplit(":", 1)
    client.images.get(step_image).tag(repo, tag)
    try:
        present = executor.run(make_spec(image=name, pull_policy="if-not-present", command="true"), Logs())
        assert present.status == "succeeded", present
        always = executor.run(make_spec(image=name, pull_policy="always", command="true"), Logs())
        assert always.status == "failed" and "pull failed" in (always.error or ""), always
    finally:
        client.images.remove(name)


def test_unreachable_engine(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError, match="nonexistent.sock"):
        DockerExecutor.from_url(UNREACHABLE)

    # a client that does not ask the engine's version up front only finds out when used
    lazy = DockerExecutor(docker.DockerClient(base_url=UNREACHABLE, version="1.41"))
    try:
        result = lazy.run(
            StepSpec(
                run_id=1,
                pipeline="p",
                step="s",
                image="any",
                output_dir=tmp_path / "out",
                command="true",
            ),
            Logs(),
        )
        assert result.status == "failed"
        assert "cannot reach the container engine at unix:///nonexistent.sock" in (result.error or "")
        with pytest.raises(ExecutorError, match="nonexistent.sock"):
            lazy.ping()
        with pytest.raises(ExecutorError, match="nonexistent.sock"):
            lazy.remove_run_containers(1)
    finally:
        lazy.close()


def test_ping_names_the_engine(executor: DockerExecutor, engine) -> None:
    info = executor.ping()
    assert info["engine"] == engine.name
    assert info["version"]


# ------------------------------------------------------------------ Docker socket


def test_docker_socket_refused_unless_allowed(executor: DockerExecutor, make_spec: Spec, run_containers) -> None:
    result = executor.run(make_spec(docker_socket=True, command="true"), Logs())
    assert result.status == "failed"
    assert "Docker socket" in (result.error or "") and "allow_docker_socket" in (result.error or "")
    assert result.container_id is None and run_containers() == []


def test_docker_socket_mounted_when_allowed(client, instance: str, make_spec: Spec) -> None:
    executor = DockerExecutor(client, allow_docker_socket=True, poll_interval=0.05, instance=instance)
    logs = Logs()
    result = executor.run(
        make_spec(docker_socket=True, command=["sh", "-c", f"test -S {DOCKER_SOCKET} && echo socket"]), logs
    )
    assert result.status == "succeeded", (result, logs)
    assert logs == ["socket"]


# ------------------------------------------------------------------ cleanup


def test_remove_run_containers_removes_left_overs(
    executor: DockerExecutor, client, run_id: int, instance: str, step_image: str, run_containers
) -> None:
    def leftover(run: int, inst: str):
        labels = {LABEL_RUN: str(run), LABEL_INSTANCE: inst}
        return client.containers.create(step_image, ["sleep", "30"], labels=labels, network_mode="none")

    mine = leftover(run_id, instance)
    mine.start()
    other_run = leftover(run_id + 1, instance)
    other_instance = leftover(run_id, instance + "-other")
    try:
        assert executor.remove_run_containers(run_id) == 1
        assert run_containers() == []
        assert_gone(client, mine.id)
        client.containers.get(other_run.id)  # another run of this instance stays
        assert executor.remove_run_containers() == 1  # all of this instance's runs
        assert_gone(client, other_run.id)
        client.containers.get(other_instance.id)  # another instance's container is never touched
        assert executor.remove_run_containers(run_id) == 0
    finally:
        for container in (mine, other_run, other_instance):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


# ------------------------------------------------------------------ ownership


def test_output_files_belong_to_the_owner(client, instance: str, make_spec: Spec) -> None:
    executor = DockerExecutor(client, owner=(1234, 1234), poll_interval=0.05, instance=instance)
    spec = make_spec(
        command=[
            "sh",
            "-c",
            f"mkdir {OUTPUT_MOUNT}/d && echo x > {OUTPUT_MOUNT}/d/f && echo y > {OUTPUT_MOUNT}/g",
        ]
    )
    assert executor.run(spec, Logs()).status == "succeeded"
    for path in (spec.output_dir, spec.output_dir / "d", spec.output_dir / "d" / "f", spec.output_dir / "g"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (1234, 1234), path


def test_output_files_chowned_by_a_helper_container_when_not_root(
    client, instance: str, make_spec: Spec, monkeypatch: pytest.MonkeyPatch, run_containers
) -> None:
    monkeypatch.setattr("mao.executor.docker._is_root", lambda: False)
    executor = DockerExecutor(client, owner=(4321, 4321), poll_interval=0.05, instance=instance)
    spec = make_spec(command=["sh", "-c", f"mkdir {OUTPUT_MOUNT}/d && echo x > {OUTPUT_MOUNT}/d/f"])
    logs = Logs()
    assert executor.run(spec, logs).status == "succeeded"
    assert not any(line.startswith("warning") for line in logs), logs
    for path in (spec.output_dir / "d", spec.output_dir / "d" / "f"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (4321, 4321), path
    assert run_containers() == []  # the helper is gone too


def test_chown_failure_is_a_warning_not_a_failure(
    client, instance: str, make_spec: Spec, monkeypatch: pytest.MonkeyPatch, derived_image
) -> None:
    monkeypatch.setattr("mao.executor.docker._is_root", lambda: False)
    executor = DockerExecutor(client, owner=(4321, 4321), poll_interval=0.05, instance=instance)
    # the helper runs ``chown`` from the image's PATH: an image without one makes it fail
    image = derived_image("ENV PATH=/nowhere")
    spec = make_spec(image=image, command=["/bin/sh", "-c", f"/bin/busybox touch {OUTPUT_MOUNT}/f"])
    logs = Logs()
    result = executor.run(spec, logs)
    assert result.status == "succeeded", (result, logs)
    assert any(line.startswith("warning: could not give the output files to 4321:4321") for line in logs), logs


def test_container_removed_even_when_run_breaks(
    executor: DockerExecutor, make_spec: Spec, monkeypatch: pytest.MonkeyPatch, run_containers
) -> None:
    def broken(self, deadline: float) -> None:
        raise RuntimeError("bug in the log pump")

    monkeypatch.setattr("mao.executor.docker._LogPump.finish", broken)
    with pytest.raises(RuntimeError, match="bug in the log pump"):
        executor.run(make_spec(command="echo hi"), Logs())
    assert run_containers() == []


# ------------------------------------------------------------------ network


def test_steps_get_a_network_of_their_own_by_default(executor: DockerExecutor, make_spec: Spec) -> None:
    assert executor.network_mode == "bridge"
    lines: list[str] = []
    result = executor.run(make_spec(command=["sh", "-c", "cat /proc/net/dev | grep -c eth0"]), lines.append)
    assert result.status == "succeeded", (result, lines)
    assert lines == ["1"]  # an interface on the bridge, not the host's


def test_a_missing_network_is_one_clear_error(client, instance: str, make_spec: Spec, run_containers) -> None:
    executor = DockerExecutor(client, network_mode="no-such-network-mao", poll_interval=0.05, instance=instance)
    result = executor.run(make_spec(command=["true"]), lambda line: None)
    assert result.status == "failed"
    assert "no network 'no-such-network-mao'" in result.error
    assert "bridge" in result.error and "network_mode" in result.error
    assert run_containers() == []


def _host_config_while_running(executor: DockerExecutor, spec: Spec, run_containers) -> dict:
    """The HostConfig of ``spec``'s container, read while it runs (the step is then cancelled)."""
    cancel = threading.Event()
    logs = Logs()
    worker = threading.Thread(target=lambda: executor.run(spec, logs, cancel))
    worker.start()
    try:
        wait_for(lambda: "started" in logs, timeout=15, message="the step to start")
        (running,) = run_containers()
        return dict(running.attrs["HostConfig"])
    finally:
        cancel.set()
        worker.join(30)


def test_a_steps_resources_limit_its_container(executor: DockerExecutor, make_spec: Spec, run_containers) -> None:
    spec = make_spec(command=["sh", "-c", "echo started; sleep 30"], resources=StepResources(cpus=0.5, memory="64m"))
    host = _host_config_while_running(executor, spec, run_containers)
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 * 1024 * 1024


def test_a_step_without_resources_is_not_limited(executor: DockerExecutor, make_spec: Spec, run_containers) -> None:
    spec = make_spec(command=["sh", "-c", "echo started; sleep 30"])
    host = _host_config_while_running(executor, spec, run_containers)
    assert not host.get("NanoCpus") and not host.get("Memory")
