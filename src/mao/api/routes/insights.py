"""Insights: the last ``insights.json`` each pipeline step published in the registry."""

from __future__ import annotations

from typing import Any

from mao.api.deps import InstanceDep
from mao.api.schemas import InsightList, InsightOut, PathName, Router, responses
from mao.insights import get_insight, list_insights

router = Router(prefix="/insights", tags=["insights"])


@router.get("", response_model=InsightList, responses=responses(503))
def list_all(instance: InstanceDep) -> Any:
    """Every published insight, each with its pipeline and step."""
    return list_insights(instance.registry)


@router.get("/{pipeline}/{step}", response_model=InsightOut, responses=responses(400, 404, 503))
def get_one(pipeline: PathName, step: PathName, instance: InstanceDep) -> Any:
    """One pipeline step's insight: its value, the run, instance, slot and commit that made it."""
    return get_insight(instance.registry, pipeline, step)
