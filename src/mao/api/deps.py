from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from mao.errors import Unauthorized
from mao.instance import Instance


def get_instance(request: Request) -> Instance:
    return request.app.state.instance


def require_token(request: Request) -> None:
    token = request.app.state.instance.settings.api_token
    if not token:
        return
    header = request.headers.get("authorization", "")
    given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.headers.get("x-mao-token", "")
    if not given or not hmac.compare_digest(given, token):
        raise Unauthorized("this API needs a token: send 'Authorization: Bearer <token>' (maoctl reads MAO_API_TOKEN)")


InstanceDep = Annotated[Instance, Depends(get_instance)]
