"""What one step costs besides its container: git processes and store transactions.

A step of a ``merge`` pipeline (a collector appending a row) is run after a first run
that made the clone, the node branch and ground-truth; what the step then costs is
counted with the ``Git`` runner's process counter and a SQLAlchemy ``commit`` listener
on the store's engine, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runkit import git
from sqlalchemy import event

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.memory import MemoryRegistry
from mao.status import RunStatus

MAX_GIT_PER_STEP = 12
MAX_TRANSACTIONS_PER_STEP = 6


def collect(spec, on_log) -> int:
    with (spec.output_dir / "observations.csv").open("a") as fh:
        fh.write(f"run {spec.run_id}\n")
    on_log(f"collected for run {spec.run_id}")
    return 0


@pytest.fixture
def costed(tmp_path: Path, store_url: str, remotes: dict[str, Path]) -> Iterator[tuple[Instance, dict[str, int]]]:
    settings = Settings(instance_name="node-a", data_dir=tmp_path / "data", store_url=store_url)
    inst = Instance(settings, registry=MemoryRegistry(), executor=FakeExecutor({"img/collect": collect}))
    inst.setup()
    counts = {"transactions": 0}

    def committed(_conn) -> None:
        counts["transactions"] += 1

    event.listen(inst.store.engine, "commit", committed)
    # log lines are flushed at each step's end and the run's close only (the timed flush
    # that keeps them live is tested with the buffer itself): the count does not depend on load
    inst.runner.logs.max_delay = 3600
    inst.catalog.add_tool(ToolIn(name="collector", image="img/collect"))
    inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(remotes["observations"]))))
    for steps in (1, 3):
        body = {
            "name": f"p{steps}",
            "steps": [
                {"name": f"p{steps}-s{i}", "tool": "collector", "output_dataset": "observations"} for i in range(steps)
            ],
        }
        inst.pipelines.init(PipelineIn.model_validate(body))
    # first runs: clones, node branches and ground-truth are made here, not counted
    for pipeline in ("p1", "p3"):
        assert inst.store.get_run(inst.runner.run_sync(pipeline)).status == RunStatus.SUCCEEDED
    yield inst, counts
    event.remove(inst.store.engine, "commit", committed)
    inst.close()


def _cost(inst: Instance, counts: dict[str, int], pipeline: str) -> tuple[int, int]:
    git_before, tx_before = inst.datasets.git.processes, counts["transactions"]
    run_id = inst.runner.run_sync(pipeline)
    assert inst.store.get_run(run_id).status == RunStatus.SUCCEEDED
    return inst.datasets.git.processes - git_before, counts["transactions"] - tx_before


def test_a_step_runs_few_git_processes_and_store_transactions(costed, remotes) -> None:
    inst, counts = costed
    git_one, tx_one = _cost(inst, counts, "p1")
    git_three, tx_three = _cost(inst, counts, "p3")
    by_subcommand = dict(inst.datasets.git.by_subcommand)

    # a one-step run: every git process is the step's; the store also records the run
    assert git_one <= MAX_GIT_PER_STEP, f"{git_one} git processes for one step: {by_subcommand}"
    # each further step of a run
    per_step_git = (git_three - git_one) / 2
    per_step_tx = (tx_three - tx_one) / 2
    assert per_step_git <= MAX_GIT_PER_STEP, f"{per_step_git} git processes per step: {by_subcommand}"
    assert per_step_tx <= MAX_TRANSACTIONS_PER_STEP, f"{per_step_tx} store transactions per step"
    assert tx_one <= MAX_TRANSACTIONS_PER_STEP + 6, f"{tx_one} store transactions for a one-step run"

    # and nothing was skipped: every step's row reached ground-truth with its provenance
    rows = git(remotes["observations"], "show", "ground-truth:observations.csv").splitlines()
    assert len(rows) == 1 + 3 + 1 + 3
    assert "Mao-Run: " in git(remotes["observations"], "log", "-1", "--format=%B", "ground-truth")
    run = inst.store.get_run(inst.store.list_runs("p3", limit=1)[0].id)
    assert all(step.pushed and step.output_commit and step.merge_commit for step in run.steps)
    lines = [line.line for line in inst.store.logs(run.id)]
    assert any(line.startswith("collected for run") for line in lines)
    assert lines[-1] == "run succeeded"
