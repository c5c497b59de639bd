"""The seed's registry endpoints: tools, datasets and pipeline names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mao.api.deps import InstanceDep
from mao.models import DatasetIn, ToolIn

router = APIRouter(prefix="/registry", tags=["registry"])


@router.get("/tools")
def list_tools(instance: InstanceDep) -> dict[str, Any]:
    return instance.catalog.tools()


@router.post("/tools")
def add_tool(tool: ToolIn, instance: InstanceDep) -> dict[str, Any]:
    return {"ok": True, "name": tool.name, "tool": instance.catalog.add_tool(tool)}


@router.get("/tools/{name}")
def get_tool(name: str, instance: InstanceDep) -> dict[str, Any]:
    return instance.catalog.get_tool(name)


@router.delete("/tools/{name}")
def remove_tool(name: str, instance: InstanceDep) -> dict[str, Any]:
    instance.catalog.remove_tool(name)
    return {"ok": True, "name": name}


@router.get("/datasets")
def list_datasets(instance: InstanceDep) -> dict[str, Any]:
    return instance.catalog.datasets()


@router.post("/datasets")
def add_dataset(dataset: DatasetIn, instance: InstanceDep) -> dict[str, Any]:
    return {"ok": True, "name": dataset.name, "dataset": instance.catalog.add_dataset(dataset)}


@router.get("/datasets/{name}")
def get_dataset(name: str, instance: InstanceDep) -> dict[str, Any]:
    return {"name": name, **instance.catalog.get_dataset(name)}


@router.delete("/datasets/{name}")
def remove_dataset(name: str, instance: InstanceDep) -> dict[str, Any]:
    instance.catalog.remove_dataset(name)
    return {"ok": True, "name": name}


@router.get("/pipelines")
def list_registered_pipelines(instance: InstanceDep) -> dict[str, Any]:
    return instance.catalog.pipelines()


@router.get("/pipelines/{name}")
def get_registered_pipeline(name: str, instance: InstanceDep) -> dict[str, Any]:
    return instance.catalog.get_pipeline(name)
