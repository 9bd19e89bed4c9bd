"""Every lifecycle change writes an outbox event, relayed to the lifecycle stream in order."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from samples import FAILING_PAYLOAD

from ordinaut import events
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]
CRON = {
    "title": "lifecycle",
    "schedule_kind": "cron",
    "schedule_expr": "0 8 * * *",
    "payload": {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {"x": 1}}]},
}


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = events.connect_redis(settings)
    await client.delete(events.LIFECYCLE_STREAM)
    yield client
    await client.delete(events.LIFECYCLE_STREAM)
    await client.aclose()


async def _types(pool: asyncpg.Pool, subject: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT event_type FROM outbox WHERE subject_id = $1::uuid ORDER BY seq", subject
    )
    return [r["event_type"] for r in rows]


async def test_every_task_and_run_change_is_an_outbox_event_relayed_in_order(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    redis: Redis,
) -> None:
    agent = await make_agent(SCOPES)
    h = agent["headers"]
    worker = Worker(
        pool, settings.replace(backoff_base_s=1), clock, worker_id="w", rng=random.Random(0)
    )

    task = (await client.post("/tasks", json=CRON, headers=h)).json()
    tid = task["id"]
    assert (await client.patch(f"/tasks/{tid}", json={"title": "t2"}, headers=h)).status_code == 200
    assert (await client.post(f"/tasks/{tid}/pause", headers=h)).status_code == 200
    assert (await client.post(f"/tasks/{tid}/resume", headers=h)).status_code == 200
    ok_run = (await client.post(f"/tasks/{tid}/run_now", headers=h)).json()["run_id"]
    assert await worker.run_once() == 1
    doomed = (await client.post(f"/tasks/{tid}/run_now", headers=h)).json()["run_id"]
    assert (await client.post(f"/runs/{doomed}/cancel", headers=h)).status_code == 200
    assert (await client.post(f"/tasks/{tid}/cancel", headers=h)).status_code == 200
    assert (await client.delete(f"/tasks/{tid}", headers=h)).status_code == 204

    failing = {**CRON, "payload": FAILING_PAYLOAD, "max_retries": 1, "backoff_strategy": "fixed"}
    bad = (await client.post("/tasks", json=failing, headers=h)).json()
    dead_run = (await client.post(f"/tasks/{bad['id']}/run_now", headers=h)).json()["run_id"]
    assert await worker.run_once() == 1  # attempt 1 fails: retried after the backoff
    clock.advance(60)
    assert await worker.run_once() == 1  # attempt 2 fails: dead-lettered
    once = {**failing, "max_retries": 0}
    fail_task = (await client.post("/tasks", json=once, headers=h)).json()
    failed_run = (await client.post(f"/tasks/{fail_task['id']}/run_now", headers=h)).json()
    assert await worker.run_once() == 1  # no retries allowed: dead-lettered too

    assert await _types(pool, tid) == [
        events.TASK_CREATED,
        events.TASK_UPDATED,
        events.TASK_PAUSED,
        events.TASK_RESUMED,
        events.TASK_CANCELED,
        events.TASK_DELETED,
    ]
    assert await _types(pool, ok_run) == [
        events.RUN_QUEUED,
        events.RUN_STARTED,
        events.RUN_SUCCEEDED,
    ]
    assert await _types(pool, doomed) == [events.RUN_QUEUED, events.RUN_CANCELED]
    assert await _types(pool, dead_run) == [
        events.RUN_QUEUED,
        events.RUN_STARTED,
        events.RUN_RETRIED,
        events.RUN_STARTED,
        events.RUN_DEAD_LETTERED,
    ]
    assert await _types(pool, failed_run["run_id"]) == [
        events.RUN_QUEUED,
        events.RUN_STARTED,
        events.RUN_DEAD_LETTERED,
    ]
    tenants = {r["tenant_id"] for r in await pool.fetch("SELECT tenant_id FROM outbox")}
    assert {str(t) for t in tenants} == {agent["agent_id"]}

    # the relay publishes all of it, each with id, type, time, tenant, subject and payload
    assert await events.relay_pending(pool, redis, clock.now, settings) == await pool.fetchval(
        "SELECT count(*) FROM outbox"
    )
    published = [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in await redis.xrange(events.LIFECYCLE_STREAM)
    ]
    rows = await pool.fetch("SELECT event_id, event_type FROM outbox ORDER BY seq")
    assert [(e["event_id"], e["type"]) for e in published] == [
        (str(r["event_id"]), r["event_type"]) for r in rows
    ]
    first = published[0]
    assert set(first) == {"event_id", "seq", "type", "time", "tenant_id", "subject_id", "payload"}
    assert first["tenant_id"] == agent["agent_id"]
    assert first["subject_id"] == tid
