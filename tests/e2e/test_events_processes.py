"""The real worker process consumes the ingest stream and relays lifecycle events to Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from ordinaut import events

pytestmark = pytest.mark.e2e


async def test_a_worker_process_runs_tasks_for_stream_events_and_relays_their_events(
    api: dict[str, Any], processes: Any, servers: dict[str, str]
) -> None:
    redis = Redis.from_url(servers["redis_url"])
    await redis.delete(events.INGEST_STREAM, events.DEAD_STREAM, events.LIFECYCLE_STREAM)
    processes.start("worker", "--metrics-port", "0")
    h = api["headers"]
    try:
        async with httpx.AsyncClient(base_url=api["base"], timeout=10) as client:
            task = (
                await client.post(
                    "/tasks",
                    headers=h,
                    json={
                        "title": "on orders",
                        "schedule_kind": "event",
                        "schedule_expr": "orders.*",
                        "payload": {
                            "params": {},
                            "pipeline": [
                                {"id": "a", "uses": "echo", "with": {"o": "${event.payload.o}"}}
                            ],
                        },
                    },
                )
            ).json()
            await redis.xadd(
                events.INGEST_STREAM,
                {
                    "tenant_id": task["created_by"],
                    "topic": "orders.created",
                    "payload": orjson.dumps({"o": 42}).decode(),
                    "event_id": "order-42",
                },
            )
            deadline = time.monotonic() + 30
            published: set[str] = set()
            run: dict[str, Any] | None = None
            while time.monotonic() < deadline:
                runs = (
                    await client.get("/runs", params={"task_id": task["id"]}, headers=h)
                ).json()["items"]
                run = runs[0] if runs else None
                entries = await redis.xrange(events.LIFECYCLE_STREAM)
                published = {f[b"type"].decode() for _, f in entries}
                if run and run["status"] == "succeeded" and "run.succeeded" in published:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"no run for the stream event\n{processes.logs()}")
        assert run is not None
        assert run["event_id"] == "order-42"
        assert run["output"] == {"o": 42}
        assert {"event.received", "run.queued", "run.started", "run.succeeded"} <= published
        pending = await redis.xpending(events.INGEST_STREAM, events.INGEST_GROUP)
        assert pending["pending"] == 0
    finally:
        await redis.delete(events.INGEST_STREAM, events.DEAD_STREAM, events.LIFECYCLE_STREAM)
        await redis.aclose()
