"""``/metrics``: the instance's Prometheus metrics in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from mao.api.deps import InstanceDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)  # text, not JSON: kept out of the OpenAPI document
def metrics(instance: InstanceDep) -> Response:
    return Response(instance.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
