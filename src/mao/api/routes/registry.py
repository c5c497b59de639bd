"""The seed's registry endpoints: tools, datasets and pipeline names.

The GET routes are ``async``: they answer from the registry's read cache without a thread
(see :mod:`mao.api.reads`); writes run in worker threads.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Query

from mao.api.deps import InstanceDep, ReadsDep
from mao.api.schemas import (
    DatasetAdded,
    DatasetListing,
    NamedDatasetDoc,
    OkName,
    PathName,
    PipelineDoc,
    PipelineDocListing,
    Router,
    ToolAdded,
    ToolDoc,
    ToolListing,
    responses,
)
from mao.errors import MAOError
from mao.instance import Instance
from mao.models import DatasetIn, ToolIn

log = logging.getLogger(__name__)

router = Router(prefix="/registry", tags=["registry"])

ForceQuery = Annotated[
    bool,
    Query(description="remove it even though pipelines use it (their runs then fail); never during a run using it"),
]


@router.get("/tools", response_model=ToolListing, responses=responses(503))
async def list_tools(reads: ReadsDep) -> Any:
    return await reads.listing("tool")


@router.post("/tools", response_model=ToolAdded, responses=responses(400, 409, 413, 503))
def add_tool(tool: ToolIn, instance: InstanceDep) -> Any:
    """Register a tool. When this instance's container engine can be reached but lacks the
    image and cannot pull it (within a few seconds), the answer carries a ``warning``: the
    tool is registered all the same, as it may be meant for other instances of the federation."""
    added: dict[str, Any] = {"ok": True, "name": tool.name, "tool": instance.catalog.add_tool(tool)}
    warning = _image_warning(instance, tool.image)
    if warning:
        added["warning"] = warning
    return added


def _image_warning(instance: Instance, image: str) -> str | None:
    try:
        problem = instance.executor.image_problem(image)
    except MAOError as exc:  # no engine to be seen from here: nothing to tell
        log.info("could not check image %s: %s", image, exc.message)
        return None
    if problem is None:
        return None
    return (
        f"{problem}; the tool is registered, but its runs on this instance fail until the engine has the "
        "image (pull or load it there); a tool meant for other instances of the federation can stay as it is"
    )


@router.get("/tools/{name}", response_model=ToolDoc, responses=responses(400, 404, 503))
async def get_tool(name: PathName, reads: ReadsDep) -> Any:
    return await reads.one("tool", name)


@router.delete("/tools/{name}", response_model=OkName, responses=responses(400, 404, 409, 503))
def remove_tool(name: PathName, instance: InstanceDep, force: ForceQuery = False) -> Any:
    """Unregister a tool; a 409 naming them while a run on this instance uses it, or (unless
    ``force``) while pipelines here or in the federation have a step using it."""
    instance.pipelines.remove_definition("tool", name, force=force)
    return {"ok": True, "name": name}


@router.get("/datasets", response_model=DatasetListing, responses=responses(503))
async def list_datasets(reads: ReadsDep) -> Any:
    return await reads.listing("dataset")


@router.post("/datasets", response_model=DatasetAdded, responses=responses(400, 409, 413, 503))
def add_dataset(dataset: DatasetIn, instance: InstanceDep) -> Any:
    return {"ok": True, "name": dataset.name, "dataset": instance.catalog.add_dataset(dataset)}


@router.get("/datasets/{name}", response_model=NamedDatasetDoc, responses=responses(400, 404, 503))
async def get_dataset(name: PathName, reads: ReadsDep) -> Any:
    return await reads.one("dataset", name)


@router.delete("/datasets/{name}", response_model=OkName, responses=responses(400, 404, 409, 503))
def remove_dataset(name: PathName, instance: InstanceDep, force: ForceQuery = False) -> Any:
    """Unregister a dataset (its repository is left alone); a 409 naming them while a run on
    this instance reads or writes it, or (unless ``force``) while pipelines have a step that does."""
    instance.pipelines.remove_definition("dataset", name, force=force)
    return {"ok": True, "name": name}


@router.get("/pipelines", response_model=PipelineDocListing, responses=responses(503))
async def list_registered_pipelines(reads: ReadsDep) -> Any:
    return await reads.listing("pipeline")


@router.get("/pipelines/{name}", response_model=PipelineDoc, responses=responses(400, 404, 503))
async def get_registered_pipeline(name: PathName, reads: ReadsDep) -> Any:
    return await reads.one("pipeline", name)
