"""Events in: stored before 202, fan-out to matching tasks once per event id, tenancy."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import httpx

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker


def event_task(pattern: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": f"on {pattern}",
        "schedule_kind": "event",
        "schedule_expr": pattern,
        "payload": {
            "params": {},
            "pipeline": [
                {"id": "got", "uses": "echo", "with": {"order": "${event.payload.order_id}"}}
            ],
        },
        **extra,
    }


async def test_event_fans_out_once_per_task_and_event_id(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write", "runs:read", "events:publish"])
    h = agent["headers"]
    for pattern in ("orders.created", "orders.*", "payments.*"):
        r = await client.post("/tasks", json=event_task(pattern), headers=h)
        assert r.status_code == 201, r.text
    body = {"topic": "orders.created", "payload": {"order_id": 42}, "event_id": "evt-1"}
    first = await client.post("/events", json=body, headers=h)
    assert first.status_code == 202, first.text
    assert first.json()["runs_queued"] == 2
    assert first.json()["duplicate"] is False
    again = await client.post("/events", json=body, headers=h)
    assert again.status_code == 202
    assert again.json()["duplicate"] is True
    assert await pool.fetchval("SELECT count(*) FROM runs") == 2
    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    assert await worker.run_once() == 2
    outputs = [r["output"] for r in await pool.fetch("SELECT output FROM runs")]
    assert outputs == [{"order": 42}, {"order": 42}]
    topics = (await client.get("/events/topics", headers=h)).json()["items"]
    assert [t["topic"] for t in topics] == ["orders.*", "orders.created", "payments.*"]
    recent = (await client.get("/events/stream/recent", headers=h)).json()["items"]
    assert [e["event_id"] for e in recent] == ["evt-1"]


async def test_events_are_tenant_scoped_and_validated(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    alice = await make_agent(["tasks:read", "tasks:write", "events:publish"])
    bob = await make_agent(["tasks:read", "tasks:write", "events:publish"])
    await client.post("/tasks", json=event_task("orders.*"), headers=alice["headers"])
    r = await client.post("/events", json={"topic": "orders.created"}, headers=bob["headers"])
    assert r.status_code == 202
    assert r.json()["runs_queued"] == 0
    assert (await client.get("/events/stream/recent", headers=alice["headers"])).json()[
        "items"
    ] == []
    bad = await client.post("/events", json={"topic": "orders.*"}, headers=alice["headers"])
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "topic"
    reader = await make_agent(["tasks:read"])
    denied = await client.post("/events", json={"topic": "a"}, headers=reader["headers"])
    assert denied.status_code == 403


async def test_tools_are_listed_with_schemas(client: httpx.AsyncClient, make_agent: Any) -> None:
    agent = await make_agent(["tasks:read"])
    tools = (await client.get("/tools", headers=agent["headers"])).json()["items"]
    names = {t["name"] for t in tools}
    assert {"echo", "wait", "log", "transform", "http.request", "event.publish"} <= names
    assert all("input_schema" in t and "output_schema" in t for t in tools)


async def test_event_publish_in_a_pipeline_triggers_subscribed_tasks(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write", "runs:read", "events:publish"])
    h = agent["headers"]
    producer = {
        "title": "producer",
        "schedule_kind": "event",
        "schedule_expr": "manual.start",
        "payload": {
            "params": {},
            "pipeline": [
                {
                    "id": "pub",
                    "uses": "event.publish",
                    "with": {"topic": "orders.created", "payload": {"order_id": 7}},
                }
            ],
        },
    }
    pid = (await client.post("/tasks", json=producer, headers=h)).json()["id"]
    cid = (await client.post("/tasks", json=event_task("orders.*"), headers=h)).json()["id"]
    await client.post(f"/tasks/{pid}/run_now", headers=h)
    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    assert await worker.run_once() == 1  # the producer; its event queues the consumer's run
    assert await worker.run_once() == 1
    latest = (await client.get(f"/runs/task/{cid}/latest", headers=h)).json()
    assert latest["status"] == "succeeded"
    assert latest["trigger"] == "event"
    assert latest["output"] == {"order": 7}
    stored = await pool.fetchrow("SELECT source, topic FROM events WHERE topic = 'orders.created'")
    assert dict(stored) == {"source": "pipeline", "topic": "orders.created"}
