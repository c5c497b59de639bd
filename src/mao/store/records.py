"""What the store hands out for pipelines: typed models, not rows or dicts.

A stored pipeline's steps are the same :class:`~mao.models.StepIn` models the API
validated when the pipeline was defined; the runner takes them as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from mao.errors import MAOError
from mao.models import StepIn, TriggerIn


class PipelineRecord(BaseModel):
    """A pipeline defined on this instance."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    description: str = ""
    steps: list[StepIn]
    trigger: TriggerIn | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def placeholders(self) -> list[str]:
        return sorted({v for step in self.steps for v in step.private_variables()})

    def definition(self) -> dict[str, Any]:
        """The JSON form, as registered in the federation and shown by the API."""
        definition: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "steps": [s.model_dump(exclude_none=True) for s in self.steps],
        }
        if self.trigger is not None:
            definition["trigger"] = self.trigger.model_dump()
        return definition


def as_steps(steps: Iterable[StepIn | dict[str, Any]]) -> list[StepIn]:
    """Steps as models; dicts (a stored definition, a test's literal) are validated."""
    return [s if isinstance(s, StepIn) else StepIn.model_validate(s) for s in steps]


def dump_steps(steps: Iterable[StepIn]) -> list[dict[str, Any]]:
    return [s.model_dump(exclude_none=True) for s in steps]


OVERLAP_POLICIES = ("skip", "queue", "refuse")
"""What recording a run does when its pipeline has a run pending or running: ``skip`` the
new one, ``queue`` it behind (up to a limit), or ``refuse`` it (a manual run: 409)."""


@dataclass(frozen=True)
class RunRequest:
    """A run to record: a pipeline, what triggered it and the slot it is for (or None)."""

    pipeline: str
    trigger: str = "manual"
    slot: str | None = None
    changes: tuple[str, ...] = ()
    """A run started by datasets' changes: ``<dataset>@<commit>`` of each."""


@dataclass
class RecordedRun:
    """What recording one :class:`RunRequest` did.

    ``outcome`` is ``started`` (recorded ``pending``, nothing of its pipeline ahead of it),
    ``queued`` (recorded ``pending`` behind an earlier run of its pipeline) or ``skipped``
    (not recorded: ``error`` says why, naming the run in the way)."""

    request: RunRequest
    outcome: str
    run_id: int | None = None
    created_at: datetime | None = None
    steps: list[StepIn] = field(default_factory=list)
    error: MAOError | None = None
    blocking: int | None = None
    """The run of the same pipeline that was pending or running when this one came."""
