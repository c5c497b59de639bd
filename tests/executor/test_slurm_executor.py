"""SlurmExecutor against a real one-node Slurm 22.05 (MAO_TEST_SLURM_CONF), the container run in
the job by the docker CLI and by the podman CLI: outcomes, logs while the job runs, placements,
the step's timeout, cancel, resources, and no job or container left behind."""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

import docker
from mao.executor.base import LABEL_RUN, Placement, StepResources, StepResult, StepSpec
from mao.executor.slurm import (
    JobState,
    SlurmCommands,
    SlurmExecutor,
    SlurmOptions,
    _from_squeue,
    slurm_memory,
    time_limit,
)
from mao.status import RunStatus

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("slurm")]

CLI = {
    "docker": ("MAO_TEST_DOCKER_HOST", "docker -H {url}"),
    "podman": ("MAO_TEST_PODMAN_HOST", "podman --remote --url {url}"),
}

Spec = Callable[..., StepSpec]


class Logs(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)

    def seen(self, text: str) -> bool:
        return any(text in line for line in list(self))


# ---------------------------------------------------------------------------------- unit


def test_memory_and_time_limit_are_given_as_slurm_wants_them() -> None:
    assert slurm_memory("512m") == "512M"
    assert slurm_memory("2g") == "2048M"
    assert slurm_memory("1000") == "1M"  # bytes, rounded up to a MiB
    assert time_limit(2) == "2"  # a minute, rounded up, then a minute's backstop
    assert time_limit(3600) == "61"


def test_squeue_exit_codes_are_wait_statuses() -> None:
    assert _from_squeue({"job_state": "FAILED", "exit_code": 1280, "nodes": "n1"}).exit_code == 5
    ended = _from_squeue({"job_state": "CANCELLED", "exit_code": 15})
    assert (ended.exit_code, ended.signal) == (0, 15)
    assert _from_squeue({"job_state": "RUNNING", "exit_code": 0, "nodes": ""}).exit_code is None


def test_a_bad_cli_setting_is_refused(tmp_path: Path) -> None:
    from mao.errors import InvalidInput

    with pytest.raises(InvalidInput, match="slurm_container_cli"):
        SlurmExecutor(SlurmCommands(), SlurmOptions(log_dir=tmp_path, container_cli="  "))


def test_settings_for_slurm_by_commit_need_the_url_nodes_reach_the_api_by(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from mao.config import Settings

    with pytest.raises(ValidationError, match="exchange_url"):
        Settings(data_dir=tmp_path, executor="slurm")
    with pytest.raises(ValidationError, match="exchange_url"):
        Settings(data_dir=tmp_path, exchange_url="http://user:pw@head:8321")
    ok = Settings(data_dir=tmp_path, executor="slurm", exchange_url="http://head:8321/")
    assert ok.exchange_url == "http://head:8321" and ok.slurm_data == "commit"
    assert Settings(data_dir=tmp_path, executor="slurm", slurm_data="shared").exchange_url is None


def test_resources_in_a_pipeline_file_are_checked() -> None:
    from pydantic import ValidationError

    from mao.models import StepIn

    step = {"name": "s", "tool": "t", "output_dataset": "d"}
    good = StepIn.model_validate(
        {**step, "resources": {"cpus": 2, "memory": "2g", "partition": "gpu", "gres": "gpu:a100:2"}}
    )
    assert good.resources is not None and good.resources.gres == "gpu:a100:2"
    for bad in ({"cpus": 0}, {"memory": "lots"}, {"partition": "a b"}, {"gres": "gpu;rm -rf"}, {"nodes": 3}):
        with pytest.raises(ValidationError):
            StepIn.model_validate({**step, "resources": bad})


def test_a_job_is_cancelled_when_following_it_breaks(tmp_path: Path) -> None:
    class Broken(SlurmCommands):
        cancelled: list[str] = []

        def submit(self, args: list[str], env: dict[str, str]) -> str:
            return "42"

        def state(self, job: str) -> JobState | None:
            raise RuntimeError("boom")

        def cancel(self, job: str) -> None:
            self.cancelled.append(job)

    commands = Broken()
    executor = SlurmExecutor(commands, SlurmOptions(log_dir=tmp_path))
    spec = StepSpec(run_id=1, pipeline="p", step="s", image="i", output_dir=tmp_path)
    with pytest.raises(RuntimeError):
        executor.run(spec, Logs())
    assert commands.cancelled == ["42"]


# ---------------------------------------------------------------------------------- real Slurm


@pytest.fixture(scope="session")
def slurm_conf() -> Path:
    conf = os.environ.get("MAO_TEST_SLURM_CONF")
    if not conf:
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("MAO_TEST_SLURM_CONF is not set (scripts/services.sh up)", pytrace=False)
        pytest.skip("MAO_TEST_SLURM_CONF is not set")
    return Path(conf)


@pytest.fixture(scope="session", params=["docker", "podman"])
def cli(request: pytest.FixtureRequest) -> tuple[str, docker.DockerClient]:
    var, pattern = CLI[request.param]
    url = os.environ.get(var)
    if not url:
        pytest.skip(f"{var} is not set")
    return pattern.format(url=url), docker.DockerClient(base_url=url, timeout=30)


@pytest.fixture
def run_id() -> int:
    return random.randint(10**8, 2 * 10**9)


@pytest.fixture
def executor(slurm_conf: Path, cli: tuple[str, Any], tmp_path: Path) -> Iterator[SlurmExecutor]:
    options = SlurmOptions(
        log_dir=tmp_path / "slurm-logs", container_cli=cli[0], data="shared", network_mode="none", poll_interval=0.3
    )
    executor = SlurmExecutor(SlurmCommands(slurm_conf), options, instance=f"test-{uuid.uuid4().hex[:10]}")
    yield executor
    executor.remove_run_containers()


@pytest.fixture
def make_spec(tmp_path: Path, run_id: int, executor: SlurmExecutor) -> Spec:
    def make(**fields: Any) -> StepSpec:
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        base: dict[str, Any] = {
            "run_id": run_id,
            "pipeline": "p",
            "step": "s1",
            "image": os.environ.get("MAO_TEST_IMAGE") or "mao/busybox:local",
            "output_dir": out,
            "instance": executor.instance,
            "timeout": 120.0,
        }
        base.update(fields)
        return StepSpec(**base)

    return make


def _left(cli: tuple[str, docker.DockerClient], run_id: int) -> list[Any]:
    containers: list[Any] = cli[1].containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
    return containers


def _jobs_left(executor: SlurmExecutor, run_id: int) -> list[int]:
    return [
        job_id
        for job_id, job in executor.commands.jobs(fresh=True).items()
        if str(job.get("comment", "")).endswith(f":{run_id}:s1") and job.get("job_state") in ("PENDING", "RUNNING")
    ]


def _start(executor: SlurmExecutor, spec: StepSpec, logs: Logs, cancel: threading.Event) -> dict[str, StepResult]:
    done: dict[str, StepResult] = {}
    threading.Thread(target=lambda: done.update(result=executor.run(spec, logs, cancel)), daemon=True).start()
    return done


def test_a_step_runs_in_a_job_with_its_mounts_env_and_placements(
    executor: SlurmExecutor, make_spec: Spec, tmp_path: Path, run_id: int, cli: Any
) -> None:
    seen: list[Placement] = []
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("a,b\n")
    spec = make_spec(
        command=["sh", "-c", "echo hello $WHO; cat /usr/src/app/input/rows.csv > /usr/src/app/data/copy; "
                 "echo $SECRET; touch /usr/src/app/input/x 2>/dev/null || echo read-only"],
        env={"WHO": "world", "SECRET": "s3cr3t-value"},
        secret_values=["s3cr3t-value"],
        input_dir=tmp_path / "in",
        on_placement=seen.append,
        resources=StepResources(cpus=1, memory="64m"),
    )  # fmt: skip
    logs = Logs()
    result = executor.run(spec, logs)
    assert result.status == RunStatus.SUCCEEDED, (result, logs)
    assert result.exit_code == 0 and result.node == "localhost"
    image = cli[1].images.get(spec.image)
    assert result.image_digest in ((image.attrs.get("RepoDigests") or [None])[0], image.id)
    assert (tmp_path / "out" / "copy").read_text() == "a,b\n"
    assert logs.seen("hello world") and logs.seen("read-only") and logs.seen("***")
    assert not logs.seen("s3cr3t-value")
    assert [p.state for p in seen] == ["queued", "running"]
    assert seen[0].job and seen[0].job == seen[1].job and seen[1].node == "localhost"
    assert _left(cli, run_id) == []
    assert not list((tmp_path / "slurm-logs").iterdir())


def test_a_failing_tool_fails_the_step_with_its_exit_code(
    executor: SlurmExecutor, make_spec: Spec, run_id: int, cli: Any
) -> None:
    logs = Logs()
    result = executor.run(make_spec(command="sh -c 'echo oops; exit 3'"), logs)
    assert (result.status, result.exit_code, result.error) == (RunStatus.FAILED, 3, "exit code 3")
    assert logs.seen("oops")
    assert _left(cli, run_id) == []


def test_a_job_the_controller_forgot_is_read_from_the_job_completion_file(
    executor: SlurmExecutor, make_spec: Spec
) -> None:
    seen: list[Placement] = []
    result = executor.run(make_spec(command="sh -c 'exit 3'", on_placement=seen.append), Logs())
    assert result.exit_code == 3 and seen and seen[0].job
    # sacct -c: what is known once squeue no longer lists the job (MinJobAge), with no slurmdbd
    assert executor.commands.completed(seen[0].job) == JobState("FAILED", 3, 0, "localhost")


def test_a_missing_image_fails_the_step(executor: SlurmExecutor, make_spec: Spec) -> None:
    result = executor.run(make_spec(image="mao/no-such-image:none", pull_policy="never"), Logs())
    assert result.status == RunStatus.FAILED and result.exit_code == 125
    assert "create its container" in (result.error or "")


def test_a_refused_submission_fails_the_step_and_leaves_nothing(
    executor: SlurmExecutor, make_spec: Spec, run_id: int
) -> None:
    result = executor.run(make_spec(resources=StepResources(partition="nosuchpartition")), Logs())
    assert result.status == RunStatus.FAILED
    assert "not submitted" in (result.error or "") and "partition" in (result.error or "").lower()
    assert _jobs_left(executor, run_id) == []


def test_logs_arrive_while_the_job_runs_and_the_timeout_ends_it(
    executor: SlurmExecutor, make_spec: Spec, run_id: int, cli: Any
) -> None:
    logs, cancel = Logs(), threading.Event()
    spec = make_spec(command=["sh", "-c", "echo first; sleep 300"], timeout=3.0)
    done = _start(executor, spec, logs, cancel)
    wait_for(lambda: logs.seen("first"), timeout=60, message="the job's first line while it runs")
    wait_for(lambda: "result" in done, timeout=120, message="the step's end")
    result = done["result"]
    assert result.status == RunStatus.TIMED_OUT and "timed out" in (result.error or "")
    wait_for(lambda: _left(cli, run_id) == [], timeout=30, message="the container removed")
    assert _jobs_left(executor, run_id) == []


def test_cancel_ends_the_job_and_removes_its_container(
    executor: SlurmExecutor, make_spec: Spec, run_id: int, cli: Any
) -> None:
    logs, cancel = Logs(), threading.Event()
    done = _start(executor, make_spec(command=["sh", "-c", "echo started; sleep 300"]), logs, cancel)
    wait_for(lambda: logs.seen("started"), timeout=60, message="the tool started")
    cancel.set()
    wait_for(lambda: "result" in done, timeout=90, message="the step's end")
    assert done["result"].status == RunStatus.CANCELLED
    wait_for(lambda: _left(cli, run_id) == [], timeout=30, message="the container removed")
    assert _jobs_left(executor, run_id) == []


def test_remove_run_containers_cancels_the_runs_jobs(
    executor: SlurmExecutor, make_spec: Spec, run_id: int, cli: Any
) -> None:
    logs, cancel = Logs(), threading.Event()
    done = _start(executor, make_spec(command=["sh", "-c", "echo started; sleep 300"]), logs, cancel)
    wait_for(lambda: logs.seen("started"), timeout=60, message="the tool started")
    assert executor.remove_run_containers(run_id + 1) == 0
    assert executor.remove_run_containers(run_id) == 1
    wait_for(lambda: "result" in done, timeout=90, message="the step's end")
    assert done["result"].status == RunStatus.FAILED and "cancelled on the cluster" in (done["result"].error or "")
    wait_for(lambda: _left(cli, run_id) == [], timeout=30, message="the container removed")


def test_ping_names_slurm(executor: SlurmExecutor) -> None:
    assert executor.ping()["engine"] == "slurm"
