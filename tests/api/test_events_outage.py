"""Redis stopped and restarted while runs happen: nothing is lost, order is kept, /health says
degraded meanwhile. Uses a Redis server of its own (embedded, unix socket)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from ordinaut import events
from ordinaut.api import create_app
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.embedded import EmbeddedRedis
from ordinaut.store import outbox
from ordinaut.worker import Worker

CRON = {
    "title": "t",
    "schedule_kind": "cron",
    "schedule_expr": "0 8 * * *",
    "payload": {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(base_settings: Settings, own_redis: EmbeddedRedis) -> Settings:
    return base_settings.replace(redis_url=own_redis.url)


@pytest.fixture
async def app(settings: Settings, pool: asyncpg.Pool, clock: FrozenClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock, pool=pool)
    yield application
    await application.state.deps.close()


async def _health(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/health")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


async def test_a_redis_outage_delays_events_and_loses_none(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    own_redis: EmbeddedRedis,
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write", "runs:read"])
    h = agent["headers"]
    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    relay = events.connect_redis(settings)
    try:
        task = (await client.post("/tasks", json=CRON, headers=h)).json()
        await client.post(f"/tasks/{task['id']}/run_now", headers=h)
        assert await worker.run_once() == 1
        before = await events.relay_pending(pool, relay, clock.now, settings)
        assert before == 4  # task.created, run.queued, run.started, run.succeeded

        own_redis.stop()
        for _ in range(3):  # runs go on while Redis is down
            await client.post(f"/tasks/{task['id']}/run_now", headers=h)
        assert await worker.run_once() == 3
        await client.post(f"/tasks/{task['id']}/pause", headers=h)
        assert await events.relay_pending(pool, relay, clock.now, settings) == 0
        backlog = await outbox.backlog(pool)
        assert backlog == 10
        doc = await _health(client)
        assert doc["status"] == "degraded"
        assert doc["components"]["redis"]["status"] == "degraded"
        assert doc["components"]["redis"]["outbox_backlog"] == backlog

        own_redis.start()  # same data directory: what was published before is still there
        assert await events.relay_pending(pool, relay, clock.now, settings) == backlog
        doc = await _health(client)
        assert doc["components"]["redis"]["status"] == "healthy"
        assert doc["components"]["redis"]["outbox_backlog"] == 0

        stream = [
            {k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in await relay.xrange(events.LIFECYCLE_STREAM)
        ]
    finally:
        await relay.aclose()
    rows = await pool.fetch("SELECT seq, event_id, subject_id FROM outbox ORDER BY seq")
    # every event exactly once, in outbox order (so in order per subject)
    assert [e["event_id"] for e in stream] == [str(r["event_id"]) for r in rows]
    assert [int(e["seq"]) for e in stream] == [r["seq"] for r in rows]
    assert len(rows) == 14
