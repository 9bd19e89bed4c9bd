"""``create_app``: the FastAPI application (uvicorn locally, Mangum on Lambda)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg
from fastapi import APIRouter, FastAPI

from ordinaut import cloud
from ordinaut.api import contract, docs, errors
from ordinaut.api.deps import Deps
from ordinaut.api.middleware import (
    BodyLimitMiddleware,
    RateLimitMiddleware,
    RequestContextMiddleware,
    check_rate_limit_store,
)
from ordinaut.clock import Clock, DatabaseClock
from ordinaut.config import Settings
from ordinaut.toolbox import build_registry

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("ordinaut.api")

ROUTES_PACKAGE = "ordinaut.api.routes"
ROUTE_MODULES = [
    "agents",
    "health",
    "tasks",
    "runs",
    "events",
    "tools",
    "secrets",
    "ui",
    "audit",
    "admin",
    "mcp",
]


def _routers() -> list[APIRouter]:
    routers = []
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"{ROUTES_PACKAGE}.{name}")
        routers.append(module.router)
    return routers


def _mount(app: FastAPI, router: APIRouter) -> None:
    """Put ``router``'s routes into the app's own route list. ``include_router`` would add
    one lazily resolved branch per router, matched twice per request (once to select the
    branch, once inside it) at about 10% of a small read's CPU. Every router here carries
    its whole configuration (full paths, tags, route class, schema visibility) on its routes
    and has no lifespan or event handlers, so its routes can be used as they are."""
    if router.on_startup or router.on_shutdown:
        raise ValueError("a route module's router has event handlers: include it instead")
    app.router.routes.extend(router.routes)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    pool: asyncpg.Pool | None = None,
    redis: Redis | None = None,
) -> FastAPI:
    """The API over ``settings``. A given pool / Redis client is used and never closed; without
    one they are created on first use and closed at lifespan shutdown. The default clock is
    the database's (docs/guarantees.md, "One clock")."""
    check_rate_limit_store(settings)
    deps = Deps(
        settings=settings,
        clock=clock if clock is not None else DatabaseClock(),
        external_pool=pool,
        external_redis=redis,
        waker=(
            cloud.Waker(settings.work_queue_url, source="ordinaut.api")
            if settings.work_queue_url
            else None
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await deps.close()

    app = FastAPI(
        title="Ordinaut",
        version="0.1.0",
        summary="Durable task scheduling for AI assistants.",
        lifespan=lifespan,
        redirect_slashes=False,
        # Swagger UI and ReDoc are served from this package's dependencies, not a CDN
        # (api/docs.py), so they work where there is no internet.
        docs_url=None,
        redoc_url=None,
    )
    app.state.deps = deps
    # Tool extensions are loaded and checked when the app is built (a broken one is logged
    # and left out), not on the first request that validates a pipeline.
    app.state.tool_registry = build_registry(settings)
    errors.install(app)
    # add_middleware prepends: the last one added runs first.
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(RequestContextMiddleware)
    for router in _routers():
        contract.document(router)
        _mount(app, router)
    docs.install(app)
    return app
