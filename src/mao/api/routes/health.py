"""``/health``: whether the instance's store and registry answer.

Open to all: container healthchecks and load balancers read its status code. When the API
has a token, only a request with it gets the details (instance, version, each check, the
store's and the registry's addresses and errors); any other gets ``ok`` and, when it is
false, an error without them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mao.api.deps import InstanceDep, require_token
from mao.api.schemas import ErrorBody, HealthOut, responses
from mao.instance import Instance
from mao.web.auth import given_token
from mao.web.errors import error_body

router = APIRouter(tags=["health"])


def health(instance: Instance) -> JSONResponse:
    """Every check, with its details (:meth:`mao.operations.Operations.health`): 200, or 503 with the one
    error shape beside the checks."""
    body = instance.operations.health()
    if not body["ok"]:  # the one error shape, with the checks beside it
        checks = body["checks"]
        failed = "; ".join(f"{name}: {c['error']}" for name, c in checks.items() if not c["ok"])
        body["error"] = error_body("unavailable", f"unhealthy: {failed}")["error"]
    return JSONResponse(body, status_code=200 if body["ok"] else 503)


def _without_details(full: JSONResponse) -> JSONResponse:
    if full.status_code == 200:
        return JSONResponse({"ok": True})
    message = "unhealthy: send the API token (Authorization: Bearer <token>) for the failed checks"
    return JSONResponse(error_body("unavailable", message), status_code=full.status_code)


@router.get(
    "/health",
    name="health",
    response_model=HealthOut,
    responses={
        503: {"model": HealthOut, "description": "A check failed: ok is false, error says which"},
        401: {"model": ErrorBody, "description": "A wrong API token (none at all is fine: the answer has no details)"},
        **responses(429),
    },
)
async def health_check(request: Request, instance: InstanceDep) -> Any:
    """``ok`` and the status; the details too when the API has no token or the request has it."""
    detailed = instance.settings.api_token is None or bool(given_token(request))
    if detailed:
        await require_token(request)  # a wrong token is a 401 (and counts as one), not a shorter answer
    full = await run_in_threadpool(health, instance)
    return full if detailed else _without_details(full)
