"""One JSON error shape for every 4xx and 5xx:

{"ok": false, "error": {"code": "...", "message": "...", "details": {...}}}
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from mao.errors import MAOError
from mao.errors import error_body as error_body  # the body lives with the errors; served from here too

log = logging.getLogger(__name__)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``list[StepIn] | None`` holds StepIn)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _fields_at(request: Request, loc: Sequence[Any]) -> list[str]:
    """The fields the body's model takes where ``loc`` (``body, steps, 0, comand``) put an
    unknown one; empty when the route's body is no model."""
    route = request.scope.get("route")
    params = getattr(getattr(route, "dependant", None), "body_params", None) or []
    path = list(loc[1:-1])
    if getattr(route, "_embed_body_fields", False) and path:  # several body parameters: named first
        params = [p for p in params if path[0] in (p.name, p.alias)]
        path = path[1:]
    models = [m for p in params for m in _models_in(p.field_info.annotation)]
    for part in path:
        if isinstance(part, int):
            continue  # an item of a list
        found = [
            m
            for model in models
            for name, info in model.model_fields.items()
            if part in (name, info.alias)
            for m in _models_in(info.annotation)
        ]
        models = found or models  # no field by that name: a key of a dict of models
    return sorted({info.alias or name for model in models for name, info in model.model_fields.items()})


def _hint(err: dict[str, Any], fields_at: Callable[[Sequence[Any]], list[str]] | None) -> str:
    """For a field the model does not take: the one it was probably meant to be."""
    loc = err.get("loc", ())
    if err.get("type") != "extra_forbidden" or fields_at is None or not loc or not isinstance(loc[-1], str):
        return ""
    known = fields_at(loc)
    close = difflib.get_close_matches(loc[-1], known, n=1)
    if close:
        return f" (did you mean `{close[0]}`?)"
    return f" (the fields here: {', '.join(known)})" if known else ""


def _describe(errors: list[dict[str, Any]], fields_at: Callable[[Sequence[Any]], list[str]] | None = None) -> str:
    parts = []
    for err in errors:
        if err.get("type") == "json_invalid":
            return "malformed JSON in the request body: " + str(err.get("ctx", {}).get("error", err.get("msg")))
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        msg = err.get("msg", "invalid")
        msg = msg.removeprefix("Value error, ") + _hint(err, fields_at)
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MAOError)
    async def _mao_error(_: Request, exc: MAOError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()

        def fields_at(loc: Sequence[Any]) -> list[str]:
            return _fields_at(request, loc)

        fields = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")).removeprefix("Value error, ") + _hint(e, fields_at),
            }
            for e in errors
        ]
        message = _describe(list(errors), fields_at)
        content_type = request.headers.get("content-type", "")
        if (
            content_type
            and "json" not in content_type.lower()
            and any(e.get("loc", ())[:1] == ("body",) for e in errors)
        ):
            # curl -d without -H sends a form: say so, not only that the body is no object
            message = (
                f"the request body must be JSON sent with 'Content-Type: application/json' "
                f"(this request's is {content_type.split(';')[0].strip()!r}; curl: -H 'content-type: application/json'); "
                + message
            )
        return JSONResponse(error_body("invalid_input", message, {"fields": fields}), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            error_body("internal_error", f"internal error: {exc.__class__.__name__}; see the server log"),
            status_code=500,
        )
