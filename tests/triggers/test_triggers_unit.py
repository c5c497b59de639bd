"""Triggers without a serving instance: the YAML's checks, the decision (debounce, any/all),
the heads kept in the store across a restart, one-mode claims, and ls-remote on a real remote."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from mao.datasets.git import Git
from mao.errors import InvalidInput
from mao.models import PipelineIn, TriggerIn
from mao.registry.memory import MemoryRegistry
from mao.store.records import RecordedRun, RunRequest
from mao.store.store import Store
from mao.triggers.heads import RemoteHeads
from mao.triggers.state import Head, TriggerHeads, due
from mao.triggers.watch import TriggerSettings, TriggerWatch

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
STEPS = [{"name": "s", "tool": "t", "input_dataset": "a", "output_dataset": "out"}]


def pipeline(trigger: object) -> PipelineIn:
    return PipelineIn.model_validate({"name": "p", "steps": STEPS, "trigger": trigger})


# ------------------------------------------------------------------------ the pipeline YAML


def test_trigger_takes_durations_and_defaults() -> None:
    trigger = pipeline({"datasets": ["a", "b"], "mode": "all", "debounce": "2m"}).trigger
    assert trigger == TriggerIn(datasets=["a", "b"], mode="all", debounce=120, federation="every")
    assert pipeline({"datasets": ["a"], "debounce": 5}).trigger.debounce == 5  # type: ignore[union-attr]
    assert pipeline({"datasets": ["a"], "debounce": "500ms"}).trigger.debounce == 0.5  # type: ignore[union-attr]
    assert pipeline({"datasets": ["a"]}).definition()["trigger"]["mode"] == "any"


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"datasets": []}, "at least 1 item"),
        ({"datasets": ["a", "a"]}, "named twice"),
        ({"datasets": ["a"], "debounce": "soon"}, "is not a duration"),
        ({"datasets": ["a"], "debounce": "2d"}, "is not a duration"),
        ({"datasets": ["a"], "debounce": "25h"}, "between 0s and 24h"),
        ({"datasets": ["a"], "mode": "some"}, "'any' or 'all'"),
        ({"datasets": ["a"], "federation": "all"}, "'every' or 'one'"),
        ({"datasets": ["../x"]}, "datasets"),
        ({"datasets": ["out"]}, "which a step of this pipeline writes"),
        ({"datasets": ["a"], "when": "now"}, "Extra inputs"),
    ],
)
def test_a_bad_trigger_is_refused_with_what_to_fix(trigger: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        pipeline(trigger)


# ------------------------------------------------------------------------ the decision


def heads(**commits: tuple[str | None, str | None, datetime | None]) -> dict[str, Head]:
    return {d: Head(d, seen, at, fired) for d, (seen, fired, at) in commits.items()}


def test_any_fires_for_one_moved_dataset_after_the_debounce() -> None:
    trigger = TriggerIn(datasets=["a", "b"], debounce=30)
    state = heads(a=("a2", "a1", T0), b=("b1", "b1", T0))
    assert due(trigger, state, T0 + timedelta(seconds=29)) is None  # still settling
    moved = due(trigger, state, T0 + timedelta(seconds=30))
    assert moved is not None and [h.change for h in moved] == ["a@a2"]


def test_debounce_counts_from_the_newest_move() -> None:
    trigger = TriggerIn(datasets=["a", "b"], debounce=30)
    state = heads(a=("a2", "a1", T0), b=("b2", "b1", T0 + timedelta(seconds=20)))
    assert due(trigger, state, T0 + timedelta(seconds=40)) is None
    moved = due(trigger, state, T0 + timedelta(seconds=50))
    assert moved is not None and [h.change for h in moved] == ["a@a2", "b@b2"]


def test_all_waits_for_each_dataset_to_move() -> None:
    trigger = TriggerIn(datasets=["a", "b"], mode="all")
    assert due(trigger, heads(a=("a2", "a1", T0), b=("b1", "b1", T0)), T0) is None
    moved = due(trigger, heads(a=("a2", "a1", T0), b=("b2", "b1", T0)), T0)
    assert moved is not None and len(moved) == 2


def test_nothing_is_due_before_a_first_look_or_without_a_move() -> None:
    trigger = TriggerIn(datasets=["a"])
    assert due(trigger, {}, T0) is None
    assert due(trigger, heads(a=("a1", "a1", T0)), T0) is None
    assert due(trigger, heads(a=(None, None, T0)), T0) is None


# ------------------------------------------------------------------------ the watch, with its parts faked


class FakeHeads:
    def __init__(self) -> None:
        self.commits: dict[str, str | None] = {}
        self.asked: list[str] = []

    def ground_truth(self, url: str) -> str | None:
        self.asked.append(url)
        return self.commits.get(url)


class FakeDatasets:
    def get_dataset(self, name: str) -> dict[str, object]:
        return {"master": name}


class Recorder:
    """Records runs like the coordinator does (the store's rows), without executing them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.requests: list[RunRequest] = []

    def record(self, requests: Sequence[RunRequest], overlap: str = "refuse") -> list[RecordedRun]:
        self.requests.extend(requests)
        return self.store.create_runs(requests, overlap="queue")


class EveryRound(TriggerWatch):
    """Looks at every watched dataset in each round, however little time passed since the
    last (these rounds follow each other faster than any poll interval)."""

    def run_once(self) -> None:
        self._polled.clear()
        super().run_once()


def watch_for(
    store: Store, fake: FakeHeads, registry: MemoryRegistry, owner: str = "i1"
) -> tuple[TriggerWatch, Recorder]:
    recorder = Recorder(store)
    watch = EveryRound(
        fake,
        TriggerHeads(store),
        (store, FakeDatasets()),
        registry,
        lambda: recorder,
        TriggerSettings(owner=owner, poll=60),
    )
    return watch, recorder


def define(store: Store, trigger: TriggerIn, name: str = "p") -> None:
    store.add_pipeline(name, "", [{"name": "s", "tool": "t", "output_dataset": "out"}], trigger)


def test_a_move_records_one_run_naming_the_change_and_a_restart_does_not_refire(store: Store) -> None:
    define(store, TriggerIn(datasets=["a"]))
    fake, registry = FakeHeads(), MemoryRegistry()
    fake.commits["a"] = "1" * 40
    watch, recorder = watch_for(store, fake, registry)
    watch.run_once()  # the first look is the baseline: history is no change
    assert recorder.requests == []
    fake.commits["a"] = "2" * 40
    watch.run_once()
    watch.run_once()
    assert [r.changes for r in recorder.requests] == [(f"a@{'2' * 40}",)]
    [run] = store.list_runs("p")
    assert (run.trigger, run.trigger_changes) == ("dataset", [f"a@{'2' * 40}"])

    restarted, again = watch_for(store, fake, registry)  # same store: the heads were kept
    restarted.run_once()
    assert again.requests == []
    described = restarted.describe(store.get_pipeline("p"))
    assert described["datasets"][0] | {"seen_at": None, "fired_at": None} == {
        "dataset": "a",
        "seen_commit": "2" * 40,
        "seen_at": None,
        "fired_commit": "2" * 40,
        "fired_at": None,
        "last_run_id": run.id,
        "pending": False,
    }


def test_a_change_made_while_down_fires_at_the_next_start(store: Store) -> None:
    define(store, TriggerIn(datasets=["a"]))
    fake, registry = FakeHeads(), MemoryRegistry()
    fake.commits["a"] = "1" * 40
    watch_for(store, fake, registry)[0].run_once()
    fake.commits["a"] = "3" * 40  # moved while no instance was watching
    restarted, recorder = watch_for(store, fake, registry)
    restarted.run_once()
    assert [r.changes for r in recorder.requests] == [(f"a@{'3' * 40}",)]


def test_all_mode_records_one_run_for_both_changes(store: Store) -> None:
    define(store, TriggerIn(datasets=["a", "b"], mode="all"))
    fake, registry = FakeHeads(), MemoryRegistry()
    fake.commits.update(a="a" * 40, b="b" * 40)
    watch, recorder = watch_for(store, fake, registry)
    watch.run_once()
    fake.commits["a"] = "c" * 40
    watch.run_once()
    assert recorder.requests == []  # b has not moved yet
    fake.commits["b"] = "d" * 40
    watch.run_once()
    assert [r.changes for r in recorder.requests] == [(f"a@{'c' * 40}", f"b@{'d' * 40}")]


def test_one_mode_runs_a_change_once_across_instances(store: Store, tmp_path: Path) -> None:
    from mao.store.db import make_engine

    other = Store(make_engine(f"sqlite:///{tmp_path / 'other.db'}"))
    other.migrate()
    trigger = TriggerIn(datasets=["a"], federation="one")
    define(store, trigger)
    define(other, trigger)
    fake, registry = FakeHeads(), MemoryRegistry()
    fake.commits["a"] = "1" * 40
    first, first_runs = watch_for(store, fake, registry, "i1")
    second, second_runs = watch_for(other, fake, registry, "i2")
    first.run_once()
    second.run_once()
    fake.commits["a"] = "2" * 40
    first.run_once()
    second.run_once()
    assert len(first_runs.requests) == 1 and second_runs.requests == []
    assert registry.get(f"triggers/p/a@{'2' * 40}")["instance"] == "i1"  # type: ignore[index]
    assert TriggerHeads(other).heads("p")["a"].moved is False  # handled elsewhere: not run later
    other.close()


def test_a_merge_notice_makes_the_watch_look_at_once(store: Store) -> None:
    define(store, TriggerIn(datasets=["a"]))
    fake = FakeHeads()
    watch = TriggerWatch(
        fake,
        TriggerHeads(store),
        (store, FakeDatasets()),
        MemoryRegistry(),
        lambda: Recorder(store),
        TriggerSettings(owner="i1", poll=3600),
    )
    watch.run_once()
    watch.run_once()
    assert fake.asked == ["a"]  # not again before the poll interval
    watch.notice("locks/merge-a", deleted=True)
    watch.notice("locks/merge-b", deleted=False)  # taken, not released: nothing merged yet
    watch.run_once()
    assert fake.asked == ["a", "a"]


def test_an_unknown_trigger_dataset_is_refused_when_the_pipeline_is_defined(store: Store) -> None:
    from mao.catalog import Catalog
    from mao.errors import MissingDependencies
    from mao.models import DatasetIn, ToolIn
    from mao.pipelines import Pipelines

    catalog = Catalog(MemoryRegistry())
    catalog.add_tool(ToolIn(name="t", image="alpine"))
    for name in ("a", "out"):
        catalog.add_dataset(DatasetIn(name=name, body={"master": f"https://example.org/{name}.git"}))
    pipelines = Pipelines(store, catalog, schedules=lambda: None, runs=lambda: None, owner="i1")  # type: ignore[arg-type,return-value]
    with pytest.raises(MissingDependencies, match="unknown datasets: nowhere"):
        pipelines.init(pipeline({"datasets": ["nowhere"]}))
    assert store.list_pipelines() == []


# ------------------------------------------------------------------------ ls-remote on a real remote


def test_remote_heads_reads_ground_truth_of_a_real_remote(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git = Git(ssh_key_dir=None, name="t", email="t@example.org", timeout=30)
    heads = RemoteHeads(lambda: SimpleNamespace(git=git, local_remote_roots=[tmp_path]))  # type: ignore[arg-type,return-value]
    assert heads.ground_truth(str(remote)) is None  # no ground-truth yet
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True, capture_output=True)
    (work / "f").write_text("x")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    for args in (["add", "f"], ["commit", "-qm", "x"], ["push", "-q", "origin", "HEAD:refs/heads/ground-truth"]):
        subprocess.run(["git", *args], cwd=work, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True, text=True).stdout
    assert heads.ground_truth(f"file://{remote}") == sha.strip()
    with pytest.raises(InvalidInput):
        RemoteHeads(lambda: SimpleNamespace(git=git, local_remote_roots=[tmp_path / "x"])).ground_truth(str(remote))  # type: ignore[arg-type,return-value]


# ------------------------------------------------------------------------ the migration


def test_the_migration_makes_what_the_models_declare(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mao.store.models import Base
    from mao.triggers import models  # noqa: F401 - its table in the metadata

    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diffs if "trigger" in repr(d)]
    assert mine == []
