"""Fixtures for the client, CLI and MCP tests (tests/cli and tests/mcp load this file too).

The API fixtures (``app``, ``make_agent``...) and the end-to-end ones (``api``, ``processes``)
are reused from their own conftest files. ``sdk`` is an ``AsyncOrdinaut`` over the ASGI app;
``live_url`` serves the same app on a loopback port from the test's event loop, for code that
needs a real socket (the sync client, the CLI); ``run_worker`` runs queued work in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from support import load_fixtures

from ordinaut.client import AsyncOrdinaut
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

USER_SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]


_api = load_fixtures("api")
_e2e = load_fixtures("e2e")
app, make_agent, admin = _api.app, _api.make_agent, _api.admin
e2e_database, processes, api = _e2e.e2e_database, _e2e.processes, _e2e.api
free_port = _e2e.free_port


@pytest.fixture
async def agent(make_agent: Callable[..., Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """An agent with every scope but admin."""
    return dict(await make_agent(USER_SCOPES, name="assistant"))


@pytest.fixture
async def sdk(app: FastAPI, agent: dict[str, Any]) -> AsyncIterator[AsyncOrdinaut]:
    async with AsyncOrdinaut(
        "http://test", token=agent["token"], transport=httpx.ASGITransport(app=app)
    ) as client:
        yield client


@pytest.fixture
def run_worker(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> Callable[[], Awaitable[int]]:
    """Run every queued run once, in-process, on the frozen clock; returns how many ran."""
    worker = Worker(pool, settings, clock, worker_id="test-worker", rng=random.Random(0))
    return worker.run_once


@pytest.fixture
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The app on http://127.0.0.1:PORT, served from this event loop (same pool and clock)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # pytest owns signals
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
