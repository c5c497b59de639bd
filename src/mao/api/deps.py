"""The API's dependencies. They are ``async`` (they only read ``app.state``), so a request
spends no worker-thread hop on them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mao.api.reads import RegistryReads
from mao.errors import Unauthorized
from mao.gateway.tokens import SECRET_PREFIX
from mao.instance import Instance
from mao.web import token_checker
from mao.web.auth import given_token


async def get_instance(request: Request) -> Instance:
    instance: Instance = request.app.state.instance
    return instance


async def get_reads(request: Request) -> RegistryReads:
    reads: RegistryReads = request.app.state.reads
    return reads


_operator_token = token_checker(
    lambda request: request.app.state.instance.settings.api_token or None, "maoctl reads MAO_API_TOKEN"
)


async def require_token(request: Request) -> None:
    """The operator's token (when the API has one); a gateway token is refused even when it has none."""
    if given_token(request).startswith(SECRET_PREFIX):
        raise Unauthorized("a gateway token is not accepted by the operator API: it serves only /gateway routes")
    await _operator_token(request)


InstanceDep = Annotated[Instance, Depends(get_instance)]
ReadsDep = Annotated[RegistryReads, Depends(get_reads)]
