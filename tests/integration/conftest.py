"""Fixtures for store, scheduler and worker tests: an owner agent and a task factory."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.pipeline import default_registry
from ordinaut.store import tasks
from ordinaut.taskdefs import prepare

TaskFactory = Callable[..., Awaitable[dict[str, Any]]]

INSERT_AGENT = """
INSERT INTO agents (id, name, scopes, secret_hash, created_at, updated_at)
VALUES ($1, 'owner', ARRAY['tasks:read','tasks:write','runs:read'], 'x', $2, $2)
"""


@pytest.fixture
async def owner(pool: asyncpg.Pool, clock: FrozenClock) -> uuid.UUID:
    agent_id = uuid.uuid4()
    await pool.execute(INSERT_AGENT, agent_id, clock.now())
    return agent_id


ECHO = {
    "params": {"who": "world"},
    "pipeline": [{"id": "hello", "uses": "echo", "with": {"msg": "hello ${params.who}"}}],
}


@pytest.fixture
def make_task(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, owner: uuid.UUID
) -> TaskFactory:
    registry = default_registry(settings)

    async def make(**fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "title": "t",
            "description": "",
            "schedule_kind": "cron",
            "schedule_expr": "*/5 * * * *",
            "timezone": "UTC",
            "payload": ECHO,
            "priority": 5,
            "max_retries": 2,
            "backoff_strategy": "fixed",
            "dedupe_key": None,
            "dedupe_window_seconds": None,
            "concurrency_key": None,
            "misfire_policy": "run_once",
            "overlap_policy": "allow",
        }
        base.update(fields)
        prepared = prepare(base, now=clock.now(), settings=settings, registry=registry)
        prepared.update(status="active", snoozed_until=None)
        async with pool.acquire() as conn:
            return await tasks.insert_task(
                conn, task_id=uuid.uuid4(), owner_id=owner, task=prepared, now=clock.now()
            )

    return make
