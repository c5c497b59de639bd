"""The FastAPI application factory. The Instance is built in the lifespan, not at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from mao import __version__
from mao.api.deps import require_token
from mao.api.reads import RegistryReads
from mao.api.routes import (
    coverage,
    datasets,
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
)
from mao.api.schemas import responses
from mao.config import Settings
from mao.instance import Instance
from mao.ui import install_ui
from mao.web import install_error_handlers
from mao.web.docs import install_docs
from mao.web.limits import MAX_BODY_BYTES, BodyLimit

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, instance: Instance | None = None, background: bool = True
) -> FastAPI:
    """Build the app. ``background`` starts the scheduler, crash recovery and heartbeat."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        inst = instance or Instance(settings or Settings())
        inst.setup()
        app.state.instance = inst
        app.state.reads = RegistryReads(inst)
        inst.registry.start_cache()
        if background:
            from mao.lifecycle import start_background

            start_background(inst)
        try:
            yield
        finally:
            if background:
                from mao.lifecycle import stop_background

                stop_background(inst)
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
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
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
    ):
        app.include_router(module.router, dependencies=protected, responses=responses(401))
    app.include_router(gateway.tokens_router, dependencies=protected, responses=responses(401))
    app.include_router(gateway.router)  # gateway tokens only: checked per route
    install_ui(app)  # the dashboard: its own login and CSRF checks, outside the OpenAPI document
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document without its 422 answers: validation errors are 400s here, declared per route."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                if isinstance(operation, dict):
                    operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema
