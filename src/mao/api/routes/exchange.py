"""``/exchange/steps/<key>/...``: a cluster node fetches a step's trees and sends its output back.

Authenticated by the step's own token only (``Authorization: Bearer``; the operator's token is
worth nothing here), outside the OpenAPI document, and outside the API's body-size limit: the
tree a node sends back is bounded by ``transfer_max_bytes`` instead (:mod:`mao.exchange`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from mao.api.deps import InstanceDep
from mao.exchange import Tree
from mao.web.auth import given_token

router = APIRouter(prefix="/exchange", include_in_schema=False)


async def _tar(key: str, tree: Tree, request: Request, instance: InstanceDep) -> FileResponse:
    path = await run_in_threadpool(instance.exchange.pack, key, given_token(request), tree)
    return FileResponse(
        path,
        media_type="application/x-tar",
        filename=f"{tree}.tar",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.get("/steps/{key}/data")
async def get_data(key: str, request: Request, instance: InstanceDep) -> FileResponse:
    """A tar of the step's output worktree as the step starts."""
    return await _tar(key, "data", request, instance)


@router.get("/steps/{key}/input")
async def get_input(key: str, request: Request, instance: InstanceDep) -> FileResponse:
    """A tar of the step's input view at its pinned ground-truth commit."""
    return await _tar(key, "input", request, instance)


@router.put("/steps/{key}/data")
async def put_data(key: str, request: Request, instance: InstanceDep) -> JSONResponse:
    """The tree the tool left, as an uncompressed tar: checked whole, then swapped in."""
    exchange = instance.exchange
    token = given_token(request)
    exchange.opened(key, token)  # a 401 before any of the body is read
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > exchange.max_bytes:
        raise exchange.too_large()
    path: Path = await run_in_threadpool(exchange.spool)
    try:
        size = 0
        with path.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > exchange.max_bytes:
                    raise exchange.too_large()
                out.write(chunk)
        received = await run_in_threadpool(exchange.receive_file, key, token, path)
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse({"ok": True, **received})
