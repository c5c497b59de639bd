"""Defining pipelines on this instance and in the federation registry."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from mao.catalog import Catalog
from mao.errors import Conflict, InvalidInput, MissingDependencies, NotFound
from mao.models import PipelineIn
from mao.store.records import PipelineRecord
from mao.store.store import Store


class Schedules(Protocol):
    """The schedules of this instance's pipelines (:class:`mao.scheduler.scheduler.Scheduler`)."""

    def job(self, job_id: str) -> dict[str, Any] | None: ...

    def unschedule(self, job_id: str) -> None: ...


class ActiveRuns(Protocol):
    """Whether a pipeline has a run in progress (:class:`mao.runs.coordinator.RunCoordinator`)."""

    def is_active(self, pipeline: str) -> bool: ...


def unset_variables(pipeline: str, names: Iterable[str]) -> InvalidInput:
    """The 400 for a run of ``pipeline`` whose private variables ``names`` are not set here,
    naming the command that sets each; the same words when a run finds one missing."""
    unset = sorted(set(names))
    several = len(unset) > 1
    commands = "; ".join(f"`maoctl pipeline set-variable --name {pipeline} --variable {name}`" for name in unset)
    return InvalidInput(
        f"pipeline {pipeline!r} cannot run: its private variable{'s' if several else ''} {', '.join(unset)} "
        f"{'are' if several else 'is'} not set on this instance; set {'them' if several else 'it'} with "
        f"{commands} (the value is asked for, hidden), or PUT /pipeline/{pipeline}/variables",
        details={"variables": unset},
    )


class Pipelines:
    """This instance's pipelines: defined (checked against the catalog and the federation),
    described with their schedule, removed; and the tools and datasets they use kept from
    being removed under them.

    ``schedules`` and ``runs`` are given as providers: the scheduler and the run coordinator
    are built when first needed."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        schedules: Callable[[], Schedules],
        runs: Callable[[], ActiveRuns],
        owner: str,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self._schedules = schedules
        self._runs = runs
        self.owner = owner

    def check_variables_set(self, name: str) -> None:
        """A 400 naming the private variables of pipeline ``name`` not set on this instance (a
        run would fail at its first step needing one); NotFound if the pipeline is not defined."""
        row = self.store.get_pipeline(name)
        unset = set(row.placeholders()) - set(self.store.private_variable_names(name))
        if unset:
            raise unset_variables(name, unset)

    def describe(self, row: PipelineRecord) -> dict[str, Any]:
        job = self._schedules().job(row.name)
        return {
            "name": row.name,
            "description": row.description,
            "steps": row.definition()["steps"],
            "schedule": job,
            "trigger": row.trigger.model_dump() if row.trigger is not None else None,
            "private_variables": self.store.private_variable_names(row.name),
            "created_at": row.created_at.isoformat() if row.created_at else None,
        }

    def init(self, pipeline: PipelineIn) -> dict[str, Any]:
        """Check the tools and datasets exist, store the pipeline locally, register its name.
        Nothing is written when something is missing. A tool or dataset being removed meanwhile
        waits (or is refused: this pipeline uses it), never the other way round."""
        with self.catalog.in_use_lock:
            return self._init(pipeline)

    def _init(self, pipeline: PipelineIn) -> dict[str, Any]:
        steps = pipeline.steps
        tools = [s.tool for s in steps]
        datasets = [d for s in steps for d in (s.input_dataset, s.output_dataset) if d]
        if pipeline.trigger is not None:
            datasets += pipeline.trigger.datasets
        missing_tools, missing_datasets = self.catalog.missing(tools, datasets)
        if missing_tools or missing_datasets:
            raise MissingDependencies(missing_tools, missing_datasets)
        unknown = sorted(set(pipeline.private_variables) - set(pipeline.placeholders()))
        if unknown:
            raise InvalidInput(f"private variables {', '.join(unknown)} are not used by any step's env")
        definition = pipeline.definition()
        self._check_node_branches(pipeline)
        self._check_federation_definition(definition)
        row = self.store.add_pipeline(definition["name"], definition["description"], pipeline.steps, pipeline.trigger)
        try:
            for name, value in pipeline.private_variables.items():
                self.store.set_private_variable(row.name, name, value)
            self.catalog.register_pipeline(definition)
        except Exception:
            self.store.delete_pipeline(row.name)
            raise
        return self.describe(row)

    def _check_node_branches(self, pipeline: PipelineIn) -> None:
        """Each step writes the node branch ``<step>-<instance>`` of its output dataset: two
        pipelines with a step of the same name writing the same dataset would share it."""
        mine = {(s.name, s.output_dataset) for s in pipeline.steps}
        for other in self.store.list_pipelines():
            if other.name == pipeline.name:
                continue
            for step in other.steps:
                name, output = step.name, step.output_dataset
                if (name, output) in mine:
                    raise Conflict(
                        f"pipeline {other.name!r} already has a step {name!r} writing dataset {output!r}; "
                        f"both would write the node branch {name}-{self.owner}: rename the step"
                    )

    def _check_federation_definition(self, definition: dict[str, Any]) -> None:
        """A pipeline of the same name in the registry must have the same definition."""
        try:
            existing = self.catalog.get_pipeline(definition["name"])
        except NotFound:
            return
        try:
            same = PipelineIn.model_validate(existing).definition() == definition
        except ValidationError:
            same = False
        if not same:
            raise Conflict(
                f"the federation already has a different pipeline named {definition['name']!r}; "
                "use its definition (`maoctl instance init` offers it), choose another name, or, to change it "
                "for everyone, remove it first (`maoctl pipeline remove --name NAME --unregister`)"
            )

    def remove_definition(self, kind: Literal["tool", "dataset"], name: str, force: bool = False) -> None:
        """Unregister a tool or dataset. A Conflict while a run on this instance uses it, and,
        unless ``force``, while a pipeline (this instance's, or one registered in the federation)
        has a step using it: the 409 names them and nothing is removed.

        Who uses it is read and it is removed under the catalog's ``in_use_lock``, which recording
        a run takes too: a run starting at the same moment is either seen (a 409) or starts after
        the removal."""
        catalog = self.catalog
        remove = catalog.remove_tool if kind == "tool" else catalog.remove_dataset
        with catalog.in_use_lock:
            pipelines: dict[str, list[Any]] = {
                definition.get("name") or key: list(definition.get("steps") or [])
                for key, definition in catalog.pipelines().items()
            }
            local = self.store.list_pipelines()
            pipelines.update({row.name: list(row.steps) for row in local})
            schedules = self._schedules()
            scheduled = [row.name for row in local if schedules.job(row.name)]
            remove(name, self.store.active_runs(), pipelines, force=force, scheduled=scheduled)

    def remove(self, name: str, unregister: bool = False) -> None:
        """Remove a pipeline from this instance; with ``unregister`` from the registry first, so
        that a registry that cannot be reached leaves the local pipeline in place."""
        self.store.get_pipeline(name)
        if self._runs().is_active(name):
            raise Conflict(f"pipeline {name!r} has a run in progress; cancel it first")
        if unregister:
            self.catalog.unregister_pipeline(name)
        try:
            self._schedules().unschedule(name)
        except NotFound:
            pass
        self.store.delete_pipeline(name)
