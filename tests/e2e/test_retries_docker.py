"""Retries by exit code on the real Docker Engine: the tool's exit code is chosen by the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e_kit import bare_repo, git

from mao.config import Settings
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn

pytestmark = pytest.mark.docker

# exits $CODE on its first two attempts, 0 on the third; each attempt writes its own file
SCRIPT = (
    'cd /usr/src/app/data && echo "$MAO_ATTEMPT" > "attempt-$MAO_ATTEMPT.txt" && '
    'echo "attempt $MAO_ATTEMPT of the tool" && '
    'if [ "$MAO_ATTEMPT" -lt 3 ]; then exit "$CODE"; fi'
)
RETRIES = {"max": 3, "backoff": "1s", "max_delay": "5m", "on_exit_codes": [75], "never_on_exit_codes": [2]}


@pytest.fixture
def inst(tmp_path: Path, docker_host: str):
    image = os.environ.get("MAO_TEST_IMAGE", "mao/busybox:local")
    instance = Instance(
        Settings(instance_name="dock-r", data_dir=tmp_path / "data", docker_host=docker_host, pull_policy="never")
    )
    instance.setup()
    instance.catalog.add_tool(ToolIn(name="flaky", image=image))
    instance.catalog.add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(bare_repo(tmp_path / "out.git")))))
    yield instance
    instance.close()


def define(inst: Instance, name: str, code: int) -> None:
    step = {
        "name": "try",
        "tool": "flaky",
        "output_dataset": "out",
        "cmd": ["sh", "-c", SCRIPT],
        "env": {"CODE": str(code)},
        "retries": RETRIES,
    }
    inst.pipelines.init(PipelineIn.model_validate({"name": name, "steps": [step]}))


def test_exit_75_is_retried_with_backoff_and_the_last_attempt_is_committed(inst: Instance, tmp_path: Path):
    define(inst, "retried", 75)
    run = inst.store.get_run(inst.runner.run_sync("retried"))
    assert run.status == "succeeded", run.error
    (step,) = run.steps
    attempts = step.attempts
    assert [(a.number, a.status, a.exit_code) for a in attempts] == [
        (1, "failed", 75),
        (2, "failed", 75),
        (3, "succeeded", 0),
    ]
    assert [a.retry_delay_s for a in attempts] == [1.0, 2.0, None]
    # the backoff was waited: each attempt started at least its delay after the one before ended
    for before, after in zip(attempts, attempts[1:], strict=False):
        assert (after.started_at - before.finished_at).total_seconds() >= before.retry_delay_s
    # the step's commit is the last attempt's output only
    remote = tmp_path / "out.git"
    assert git(remote, "ls-tree", "--name-only", step.output_commit).split() == ["attempt-3.txt"]
    tagged = {(line.attempt, line.line) for line in inst.store.logs(run.id)}
    assert {(1, "attempt 1 of the tool"), (2, "attempt 2 of the tool"), (3, "attempt 3 of the tool")} <= tagged
    assert 'mao_step_retries_total{pipeline="retried",step="try"} 2.0' in inst.metrics.exposition().decode()


def test_exit_2_is_not_retried(inst: Instance):
    define(inst, "refused", 2)
    run = inst.store.get_run(inst.runner.run_sync("refused"))
    assert run.status == "failed"
    (step,) = run.steps
    assert [(a.number, a.exit_code, a.retry_delay_s) for a in step.attempts] == [(1, 2, None)]
    assert step.exit_code == 2 and step.output_commit is None
    assert "mao_step_retries_total" not in inst.metrics.exposition().decode().replace(
        "# HELP mao_step_retries_total", ""
    ).replace("# TYPE mao_step_retries_total", "")
