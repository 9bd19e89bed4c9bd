"""API fixtures: the app over the test pool and frozen clock, an HTTP client, agents with tokens.

``make_agent(scopes)`` and ``admin`` return ``{"agent_id", "secret", "token", "refresh_token",
"headers"}``; agents are created through ``store.agents`` (as the CLI does), tokens issued
directly, so only the tests about the exchange pay for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from ordinaut.api import create_app
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.store import agents

AgentFactory = Callable[..., Awaitable[dict[str, Any]]]
BASE_URL = "http://test"


@pytest.fixture
async def app(settings: Settings, pool: asyncpg.Pool, clock: FrozenClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock, pool=pool)
    yield application
    await application.state.deps.close()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
def make_agent(pool: asyncpg.Pool, clock: FrozenClock, settings: Settings) -> AgentFactory:
    async def make(scopes: Sequence[str], *, name: str = "agent") -> dict[str, Any]:
        async with pool.acquire() as conn:
            agent, secret = await agents.create_agent(
                conn, name=name, scopes=scopes, now=clock.now()
            )
            pair = await agents.issue_tokens(conn, agent.id, clock.now(), settings)
        return {
            "agent_id": str(agent.id),
            "secret": secret,
            "token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "headers": {"Authorization": f"Bearer {pair.access_token}"},
        }

    return make


@pytest.fixture
async def admin(make_agent: AgentFactory) -> dict[str, Any]:
    return await make_agent(["admin"], name="admin")
