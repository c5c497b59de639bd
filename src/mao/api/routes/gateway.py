"""The gateway: token management for the operator, and record writes and reads for tools that
hold a gateway token (the operator's token is not accepted there, nor a gateway token here)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Path, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from mao.api.deps import InstanceDep
from mao.api.routes.insights import LISTED, listed
from mao.api.schemas import (
    GatewayTokenCreated,
    GatewayTokenList,
    GatewayTokenRevoked,
    InsightList,
    InsightOut,
    PathName,
    RecordWritten,
    Router,
    responses,
)
from mao.gateway.records import MAX_RECORD_BYTES
from mao.gateway.tokens import DEFAULT_RATE
from mao.models import Strict
from mao.validation import Name, check_name
from mao.web.auth import given_token

tokens_router = Router(prefix="/gateway/tokens", tags=["gateway"])
router = Router(prefix="/gateway", tags=["gateway"])


class TokenIn(Strict):
    name: Name
    dataset: Name
    scope: Literal["read", "write"]
    rate: str = Field(default=DEFAULT_RATE, max_length=32, description="N/s, N/min or N/h")


@tokens_router.post(
    "", status_code=201, response_model=GatewayTokenCreated, responses=responses(400, 404, 409, 413, 503)
)
def create_token(body: TokenIn, instance: InstanceDep) -> Any:
    """A token for a tool that is not an instance; its secret is in this answer only."""
    instance.catalog.get_dataset(body.dataset)  # 404 for a dataset the registry does not know
    info, secret = instance.gateway.tokens.create(body.name, body.dataset, body.scope, body.rate)
    return {"ok": True, "token": info.public(), "secret": secret}


@tokens_router.get("", response_model=GatewayTokenList, responses=responses(503))
def list_tokens(instance: InstanceDep) -> Any:
    return {"tokens": [t.public() for t in instance.gateway.tokens.list()]}


@tokens_router.delete("/{name}", response_model=GatewayTokenRevoked, responses=responses(400, 404, 503))
def revoke_token(name: PathName, instance: InstanceDep) -> Any:
    """Revoke for good: the next request with it is a 401. Revoking a revoked token changes
    nothing and says so (``already_revoked``)."""
    check_name(name, "token name")
    token, revoked_now = instance.gateway.tokens.revoke_once(name)
    return {"ok": True, "token": token.public(), "already_revoked": not revoked_now}


_RECORD_BODY = {
    "requestBody": {
        "required": True,
        "description": f"one record: a JSON object of at most {MAX_RECORD_BYTES} bytes",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_GATEWAY_ERRORS = (400, 401, 403, 404, 429, 503)


@router.post(
    "/datasets/{name}/records",
    status_code=201,
    response_model=RecordWritten,
    responses=responses(*_GATEWAY_ERRORS, 409, 413, 502),
    openapi_extra=_RECORD_BODY,
)
async def post_record(name: PathName, request: Request, instance: InstanceDep) -> Any:
    """Append a record to the dataset (a ``write`` token for it): committed on ``gateway-<token>``
    and merged into ground-truth before the answer."""
    secret = given_token(request)
    body = await request.body()
    written = await run_in_threadpool(instance.gateway.post_record, secret, name, body)
    return {"ok": True, **written}


@router.get(
    "/datasets/{name}/files/{path:path}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **responses(*_GATEWAY_ERRORS, 413, 502),
    },
)
def read_file(
    name: PathName,
    instance: InstanceDep,
    request: Request,
    path: str = Path(description="a file path in the dataset's ground-truth"),
) -> Response:
    """A file of the dataset's ground-truth (a ``read`` or ``write`` token for it)."""
    content = instance.gateway.read_file(given_token(request), name, path)
    return Response(content, media_type="application/octet-stream")


@router.get("/insights", response_model=InsightList, responses={**LISTED, **responses(401, 429, 503)})
def list_insights(instance: InstanceDep, request: Request, response: Response) -> Any:
    """Every published insight, as ``GET /insights`` answers them (one that cannot be served is
    left out and named in the ``X-MAO-Skipped-Insights`` header); any gateway token."""
    return listed(instance.gateway.insights(given_token(request)), response)


@router.get("/insights/{pipeline}/{step}", response_model=InsightOut, responses=responses(*_GATEWAY_ERRORS))
def get_insight(pipeline: PathName, step: PathName, instance: InstanceDep, request: Request) -> Any:
    return instance.gateway.insight(given_token(request), pipeline, step)
