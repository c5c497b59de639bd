"""The FastAPI application factory. The Instance is built in the lifespan, not at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from mao import __version__
from mao.api.deps import require_token
from mao.api.reads import RegistryReads
from mao.api.routes import (
    coverage,
    datasets,
    exchange,
    federation,
    gateway,
    health,
    insights,
    jobs,
    metrics,
    notifications,
    pipelines,
    registry,
    repos,
    runs,
    triggers,
)
from mao.api.schemas import responses
from mao.config import Settings
from mao.instance import Instance
from mao.ui import install_ui
from mao.web import hosts, install_error_handlers, throttle
from mao.web.crosssite import CrossSiteGuard
from mao.web.docs import install_docs
from mao.web.hosts import HostPolicy, TrustedHosts
from mao.web.limits import MAX_BODY_BYTES, BodyLimit
from mao.web.throttle import FailureThrottle

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, instance: Instance | None = None, background: bool = True
) -> FastAPI:
    """Build the app. ``background`` starts the scheduler, crash recovery and heartbeat."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        inst = instance or Instance(settings or Settings())
        inst.setup()
        setattr(app.state, hosts.STATE_KEY, host_policy(inst.settings))
        app.state.instance = inst
        app.state.reads = RegistryReads(inst)
        inst.registry.start_cache()
        if background:
            inst.start_background()
        try:
            yield
        finally:
            if background:
                inst.stop_background()
            if instance is None:
                inst.close()

    app = FastAPI(
        title="MAO Orchestrator",
        version=__version__,
        description="Federated, cron-scheduled pipelines of containerised tools over git datasets.",
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_docs: no CDN
        redoc_url=None,  # ReDoc would load from a CDN: blank without internet
    )
    install_error_handlers(app)
    install_docs(app)
    setattr(app.state, throttle.STATE_KEY, FailureThrottle())
    # a step's output tree from a cluster node is bounded by transfer_max_bytes instead
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, exempt=("/exchange/",))
    # the dashboard checks its own forms; the gateway's records come from tools holding a token
    app.add_middleware(CrossSiteGuard, own_checks=("/ui/",), any_body=("/gateway/datasets/", "/exchange/"))
    app.add_middleware(TrustedHosts)  # outermost: a request for another name reaches nothing
    app.include_router(health.router)
    protected = [Depends(require_token)]
    for module in (
        registry,
        pipelines,
        runs,
        jobs,
        repos,
        federation,
        coverage,
        datasets,
        metrics,
        insights,
        notifications,
        triggers,
    ):
        app.include_router(module.router, dependencies=protected, responses=responses(401, 429))
    app.include_router(gateway.tokens_router, dependencies=protected, responses=responses(401, 429))
    app.include_router(gateway.router)  # gateway tokens only: checked per route
    app.include_router(exchange.router)  # a step's own token only: checked per route
    install_ui(app)  # the dashboard: its own login and CSRF checks, outside the OpenAPI document
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def host_policy(settings: Settings) -> HostPolicy:
    """The names the API answers to (see :mod:`mao.web.hosts`); a warning when a wildcard bind
    leaves them at loopback only, which no other machine reaches it by."""
    if settings.api_host in hosts.WILDCARD_BINDS and not settings.allowed_hosts and not settings.public_url:
        log.warning(
            "bound to %s, but answering only to localhost and loopback addresses: list the names and addresses "
            "clients reach this instance by in allowed_hosts (MAO_ALLOWED_HOSTS), or set public_url",
            settings.api_host,
        )
    return HostPolicy.of(bind=settings.api_host, public_url=settings.public_url, allowed=settings.allowed_hosts)


_WRITE_REFUSALS = {
    "403": "Sent from another site's page (its Sec-Fetch-Site or Origin header), or not allowed to this token",
    "415": "The request body is not JSON: send it with Content-Type: application/json",
}
"""What every POST, PUT, PATCH and DELETE may answer (mao.web.crosssite), added to the document."""


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without its 422 answers (validation errors are 400s here, declared per
    route), with the refusals of writes from other sites on every write."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for name, path in schema.get("paths", {}).items():
            for method, operation in path.items():
                if isinstance(operation, dict):
                    answers = operation.setdefault("responses", {})
                    answers.pop("422", None)
                    if method in ("post", "put", "patch", "delete"):
                        for code, text in _WRITE_REFUSALS.items():
                            if code == "415" and name.startswith("/gateway/datasets/"):
                                continue
                            answers.setdefault(code, {"description": text, "content": error})
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema
