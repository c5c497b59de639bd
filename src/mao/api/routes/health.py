from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mao.api.deps import InstanceDep
from mao.api.schemas import HealthOut
from mao.errors import MAOError
from mao.web.errors import error_body

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "A check failed: ok is false, error says which"}},
)
def health(instance: InstanceDep) -> Any:
    checks: dict[str, Any] = {}
    ok = True
    for name, probe in (("store", instance.store.ping), ("registry", instance.registry.ping)):
        try:
            result = probe()
            checks[name] = {"ok": True, **(result or {})}
        except MAOError as exc:
            ok = False
            checks[name] = {"ok": False, "error": exc.message}
            if "reason" in exc.details:  # e.g. the registry: "unreachable" or "no_quorum"
                checks[name]["reason"] = exc.details["reason"]
    body: dict[str, Any] = {"ok": ok, "instance": instance.name, "version": instance.version, "checks": checks}
    if not ok:  # the one error shape, with the checks beside it
        failed = "; ".join(f"{name}: {c['error']}" for name, c in checks.items() if not c["ok"])
        body["error"] = error_body("unavailable", f"unhealthy: {failed}")["error"]
    return JSONResponse(body, status_code=200 if ok else 503)
