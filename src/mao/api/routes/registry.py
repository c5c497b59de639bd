"""The seed's registry endpoints: tools, datasets and pipeline names.

The GET routes are ``async``: they answer from the registry's read cache without a thread
(see :mod:`mao.api.reads`); writes run in worker threads.
"""

from __future__ import annotations

from typing import Any

from mao.api.deps import InstanceDep, ReadsDep
from mao.api.schemas import (
    DatasetAdded,
    DatasetDoc,
    NamedDatasetDoc,
    OkName,
    PathName,
    PipelineDoc,
    Router,
    ToolAdded,
    ToolDoc,
    responses,
)
from mao.models import DatasetIn, ToolIn

router = Router(prefix="/registry", tags=["registry"])


@router.get("/tools", response_model=dict[str, ToolDoc], responses=responses(503))
async def list_tools(reads: ReadsDep) -> Any:
    return await reads.listing("tool")


@router.post("/tools", response_model=ToolAdded, responses=responses(400, 409, 413, 503))
def add_tool(tool: ToolIn, instance: InstanceDep) -> Any:
    return {"ok": True, "name": tool.name, "tool": instance.catalog.add_tool(tool)}


@router.get("/tools/{name}", response_model=ToolDoc, responses=responses(400, 404, 503))
async def get_tool(name: PathName, reads: ReadsDep) -> Any:
    return await reads.one("tool", name)


@router.delete("/tools/{name}", response_model=OkName, responses=responses(400, 404, 409, 503))
def remove_tool(name: PathName, instance: InstanceDep) -> Any:
    """Unregister a tool; a 409 while a run on this instance uses it."""
    instance.catalog.remove_tool(name, instance.store.active_runs())
    return {"ok": True, "name": name}


@router.get("/datasets", response_model=dict[str, DatasetDoc], responses=responses(503))
async def list_datasets(reads: ReadsDep) -> Any:
    return await reads.listing("dataset")


@router.post("/datasets", response_model=DatasetAdded, responses=responses(400, 409, 413, 503))
def add_dataset(dataset: DatasetIn, instance: InstanceDep) -> Any:
    return {"ok": True, "name": dataset.name, "dataset": instance.catalog.add_dataset(dataset)}


@router.get("/datasets/{name}", response_model=NamedDatasetDoc, responses=responses(400, 404, 503))
async def get_dataset(name: PathName, reads: ReadsDep) -> Any:
    return await reads.one("dataset", name)


@router.delete("/datasets/{name}", response_model=OkName, responses=responses(400, 404, 409, 503))
def remove_dataset(name: PathName, instance: InstanceDep) -> Any:
    """Unregister a dataset; a 409 while a run on this instance reads or writes it."""
    instance.catalog.remove_dataset(name, instance.store.active_runs())
    return {"ok": True, "name": name}


@router.get("/pipelines", response_model=dict[str, PipelineDoc], responses=responses(503))
async def list_registered_pipelines(reads: ReadsDep) -> Any:
    return await reads.listing("pipeline")


@router.get("/pipelines/{name}", response_model=PipelineDoc, responses=responses(400, 404, 503))
async def get_registered_pipeline(name: PathName, reads: ReadsDep) -> Any:
    return await reads.one("pipeline", name)
