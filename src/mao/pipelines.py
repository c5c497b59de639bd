"""Defining pipelines on this instance and in the federation registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mao.errors import InvalidInput, MissingDependencies, NotFound
from mao.models import PipelineIn
from mao.store.records import PipelineRecord

if TYPE_CHECKING:
    from mao.instance import Instance


def describe(row: PipelineRecord, instance: Instance) -> dict[str, Any]:
    job = instance.scheduler.job(row.name)
    return {
        "name": row.name,
        "description": row.description,
        "steps": row.definition()["steps"],
        "schedule": job,
        "private_variables": sorted(instance.store.private_variables(row.name)),
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


def init_pipeline(instance: Instance, pipeline: PipelineIn) -> dict[str, Any]:
    """Check the tools and datasets exist, store the pipeline locally, register its name.
    Nothing is written when something is missing."""
    steps = pipeline.steps
    tools = [s.tool for s in steps]
    datasets = [d for s in steps for d in (s.input_dataset, s.output_dataset) if d]
    missing_tools, missing_datasets = instance.catalog.missing(tools, datasets)
    if missing_tools or missing_datasets:
        raise MissingDependencies(missing_tools, missing_datasets)
    unknown = sorted(set(pipeline.private_variables) - set(pipeline.placeholders()))
    if unknown:
        raise InvalidInput(f"private variables {', '.join(unknown)} are not used by any step's env")
    definition = pipeline.definition()
    row = instance.store.add_pipeline(definition["name"], definition["description"], pipeline.steps)
    try:
        for name, value in pipeline.private_variables.items():
            instance.store.set_private_variable(row.name, name, value)
        instance.catalog.register_pipeline(definition)
    except Exception:
        instance.store.delete_pipeline(row.name)
        raise
    return describe(row, instance)


def remove_pipeline(instance: Instance, name: str, unregister: bool = False) -> None:
    instance.store.get_pipeline(name)
    if instance.runner.is_active(name):
        from mao.errors import Conflict

        raise Conflict(f"pipeline {name!r} has a run in progress; cancel it first")
    try:
        instance.scheduler.unschedule(name)
    except NotFound:
        pass
    instance.store.delete_pipeline(name)
    if unregister:
        instance.catalog.unregister_pipeline(name)
