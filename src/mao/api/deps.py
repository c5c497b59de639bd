"""The API's dependencies. They are ``async`` (they only read ``app.state``), so a request
spends no worker-thread hop on them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mao.api.reads import RegistryReads
from mao.instance import Instance
from mao.web import token_checker


async def get_instance(request: Request) -> Instance:
    return request.app.state.instance


async def get_reads(request: Request) -> RegistryReads:
    return request.app.state.reads


require_token = token_checker(
    lambda request: request.app.state.instance.settings.api_token or None, "maoctl reads MAO_API_TOKEN"
)

InstanceDep = Annotated[Instance, Depends(get_instance)]
ReadsDep = Annotated[RegistryReads, Depends(get_reads)]
