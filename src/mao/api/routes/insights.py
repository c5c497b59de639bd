"""Insights: the last ``insights.json`` each pipeline step published in the registry."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Response

from mao.api.deps import InstanceDep
from mao.api.schemas import InsightList, InsightOut, PathName, Router, responses
from mao.insights import SKIPPED_HEADER, get_insight, read_insights

router = Router(prefix="/insights", tags=["insights"])

MAX_SKIPPED_LISTED = 20
LISTED: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            SKIPPED_HEADER: {
                "description": "present when stored insights could not be served and were left out "
                "(nested too deep, not valid Unicode, fields of the wrong type): their registry keys, "
                "comma-separated; the server's log says why",
                "schema": {"type": "string"},
            }
        }
    }
}
"""The listing's answer, documented: the header that names the insights it left out."""


def listed(found: tuple[list[dict[str, Any]], list[dict[str, str]]], response: Response) -> list[dict[str, Any]]:
    """The insights :func:`~mao.insights.read_insights` found that can be served; the ones it
    left out are named in :data:`SKIPPED_HEADER`."""
    items, skipped = found
    if skipped:
        keys = [quote(entry["key"], safe="/") for entry in skipped[:MAX_SKIPPED_LISTED]]
        if len(skipped) > MAX_SKIPPED_LISTED:
            keys.append(f"+{len(skipped) - MAX_SKIPPED_LISTED} more")
        response.headers[SKIPPED_HEADER] = ", ".join(keys)
    return items


@router.get("", response_model=InsightList, responses={**LISTED, **responses(503)})
def list_all(instance: InstanceDep, response: Response) -> Any:
    """Every published insight, each with its pipeline and step. A stored insight that cannot be
    served is left out and named in the ``X-MAO-Skipped-Insights`` header."""
    return listed(read_insights(instance.registry), response)


@router.get("/{pipeline}/{step}", response_model=InsightOut, responses=responses(400, 404, 503))
def get_one(pipeline: PathName, step: PathName, instance: InstanceDep) -> Any:
    """One pipeline step's insight: its value, the run, instance, slot and commit that made it
    (404 also when the stored one cannot be served; the message says why)."""
    return get_insight(instance.registry, pipeline, step)
