"""A run and its steps as the launcher runs them: the run (:class:`RunInfo`), what a step is
given (:class:`StepContext`), what it learns on its way (:class:`StepRecord`) and the one
writer of step rows in the store (:class:`StepRows`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao.status import RunStatus
from mao.store.models import utcnow

if TYPE_CHECKING:
    from mao.models import StepIn
    from mao.store.store import Store


@dataclass
class RunInfo:
    """What the coordinator and the launcher know of a run, so as not to read it back."""

    id: int
    pipeline: str
    slot: str | None
    trigger: str
    step_ids: list[int]
    started: float | None = None
    """``time.monotonic()`` when it started running."""


@dataclass(frozen=True)
class StepOutcome:
    status: RunStatus
    error: str | None = None


SUCCEEDED = StepOutcome(RunStatus.SUCCEEDED)


@dataclass(frozen=True)
class StepContext:
    """Everything a step's container and its delivery are given, fixed before the container runs."""

    run_id: int
    step_id: int
    pipeline: str
    step: StepIn
    slot: str | None
    instance: str
    image: str
    """The tool's image, as the catalog had it when the step started."""
    dataset: str
    """The output dataset."""
    dataset_doc: Mapping[str, Any]
    """Its definition, as the catalog had it when the step started (``master``, ``policy``, ``vote_deadline``)."""
    branch: str
    """The node branch the step writes (:func:`~mao.runs.environment.node_branch`)."""
    env: dict[str, str]
    secrets: list[str]
    """The private variables' values in ``env``: masked in logs, never carried out by a report."""
    worktree: Path
    on_agreed: str | None
    """The ``origin/ground-truth`` commit the worktree was prepared at, if it is at it."""
    input_dir: Path | None = None
    input_commit: str | None = None
    electorate: Mapping[str, Any] | None = None
    """The slot's electorate under the ``vote`` policy, as opened before the container ran."""

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def url(self) -> str:
        return str(self.dataset_doc["master"])

    @property
    def policy(self) -> str:
        return str(self.dataset_doc.get("policy") or "merge")

    @property
    def commit_message(self) -> str:
        return f"{self.pipeline}/{self.name}: output of run {self.run_id}"

    @property
    def merge_message(self) -> str:
        return f"Merge {self.branch} into ground-truth (run {self.run_id})"

    def trailers(self, image_digest: str | None) -> dict[str, str]:
        """The provenance written in the step's commit message."""
        trailers = {
            "Mao-Run": str(self.run_id),
            "Mao-Pipeline": self.pipeline,
            "Mao-Step": self.name,
            "Mao-Tool": self.step.tool,
            "Mao-Image": self.image,
            "Mao-Image-Digest": image_digest or "unknown",
            "Mao-Input-Commit": self.input_commit or "none",
            "Mao-Instance": self.instance,
        }
        if self.slot:
            trailers["Mao-Slot"] = self.slot
        return trailers


@dataclass
class StepRecord:
    """What a step learned on its way, stored with its end. A field left None is not written
    (the row keeps what it has); ``pushed`` False is written."""

    image: str | None = None
    output_branch: str | None = None
    input_commit: str | None = None
    exit_code: int | None = None
    image_digest: str | None = None
    output_commit: str | None = None
    merge_commit: str | None = None
    pushed: bool | None = None
    suspect: bool | None = None
    suspect_detail: str | None = None
    details: dict[str, Any] | None = None

    def columns(self) -> dict[str, Any]:
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name)) is not None}


class StepRows:
    """The one writer of step rows: a step's start, its end with its record, and what its
    delivery learns after the end (a merge replayed once the registry answers)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def started(self, step_id: int) -> None:
        self.store.update_step(step_id, status=RunStatus.RUNNING, started_at=utcnow())

    def finished(self, step_id: int, outcome: StepOutcome, record: StepRecord) -> None:
        self._write(step_id, record, status=outcome.status, error=outcome.error, finished_at=utcnow())

    def learned(self, step_id: int, record: StepRecord) -> None:
        self._write(step_id, record)

    def _write(self, step_id: int, record: StepRecord, **end: Any) -> None:
        self.store.update_step(step_id, **end, **record.columns())
