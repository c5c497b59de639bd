"""One JSON error shape for every 4xx and 5xx:

{"ok": false, "error": {"code": "...", "message": "...", "details": {...}}}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mao.errors import MAOError

log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"ok": False, "error": error}


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors:
        if err.get("type") == "json_invalid":
            return "malformed JSON in the request body: " + str(err.get("ctx", {}).get("error", err.get("msg")))
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        msg = err.get("msg", "invalid")
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MAOError)
    async def _mao_error(_: Request, exc: MAOError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        fields = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")).removeprefix("Value error, ")}
            for e in errors
        ]
        message = _describe(list(errors))
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
