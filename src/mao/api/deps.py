from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mao.instance import Instance
from mao.web import token_checker


def get_instance(request: Request) -> Instance:
    return request.app.state.instance


require_token = token_checker(
    lambda request: request.app.state.instance.settings.api_token or None, "maoctl reads MAO_API_TOKEN"
)

InstanceDep = Annotated[Instance, Depends(get_instance)]
