"""A run and its steps as the launcher runs them: the run (:class:`RunInfo`) and what a step
is given (:class:`StepContext`). What a step learns on its way and the one writer of step
rows are the store's (:mod:`mao.store.steps`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mao.models import StepIn


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
    changes: list[str] = field(default_factory=list)
    """A run triggered by datasets' changes: ``<dataset>@<commit>`` of each."""


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
    trigger_changes: tuple[str, ...] = ()
    """The datasets' changes (``<dataset>@<commit>``) that triggered the run, if any."""

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

    def trailers(self, image_digest: str | None, executor: str, node: str | None = None) -> dict[str, str]:
        """The provenance written in the step's commit message; ``executor``: the engine that
        ran the step (``docker``, ``swarm``, ``remote``, ``slurm``); ``node``: the host it ran on,
        when the engine reports it (``Mao-Node``)."""
        trailers = {
            "Mao-Run": str(self.run_id),
            "Mao-Pipeline": self.pipeline,
            "Mao-Step": self.name,
            "Mao-Tool": self.step.tool,
            "Mao-Image": self.image,
            "Mao-Image-Digest": image_digest or "unknown",
            "Mao-Input-Commit": self.input_commit or "none",
            "Mao-Instance": self.instance,
            "Mao-Executor": executor,
        }
        if node:
            trailers["Mao-Node"] = node
        if self.slot:
            trailers["Mao-Slot"] = self.slot
        if self.trigger_changes:
            trailers["Mao-Trigger"] = ", ".join(self.trigger_changes)
        return trailers
