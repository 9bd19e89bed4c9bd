"""The ingest stream's consumer group: ack after store, reclaim, park (real Redis + PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis

from ordinaut import consumer, events
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

ON_ORDER = {
    "params": {},
    "pipeline": [{"id": "got", "uses": "echo", "with": {"order": "${event.payload.order_id}"}}],
}
KEYS = (events.INGEST_STREAM, events.DEAD_STREAM, events.INGEST_ERRORS)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = events.connect_redis(settings)
    await client.delete(*KEYS)
    await consumer.ensure_group(client)
    yield client
    await client.delete(*KEYS)
    await client.aclose()


@pytest.fixture
async def publisher(pool: asyncpg.Pool, owner: uuid.UUID) -> uuid.UUID:
    await pool.execute(
        "UPDATE agents SET scopes = scopes || ARRAY['events:publish'] WHERE id = $1", owner
    )
    return owner


async def _add(redis: Redis, **fields: Any) -> str:
    entry = await redis.xadd(events.INGEST_STREAM, {k: str(v) for k, v in fields.items()})
    return entry.decode()


async def _pending(redis: Redis) -> int:
    summary = await redis.xpending(events.INGEST_STREAM, events.INGEST_GROUP)
    return int(summary["pending"])


async def _dead(redis: Redis) -> dict[str, dict[str, str]]:
    out = {}
    for _, fields in await redis.xrange(events.DEAD_STREAM):
        entry = {k.decode(): v.decode() for k, v in fields.items()}
        out[entry["entry_id"]] = entry
    return out


async def _once(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, clock: FrozenClock, **kw: Any
) -> consumer.ConsumeResult:
    return await consumer.consume_once(pool, redis, settings=settings, clock=clock, **kw)


async def test_an_entry_left_unacked_by_a_dead_consumer_is_reclaimed_and_runs_once(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    clock: FrozenClock,
    make_task: Any,
    publisher: uuid.UUID,
) -> None:
    await make_task(schedule_kind="event", schedule_expr="orders.*", payload=ON_ORDER)
    payload = orjson.dumps({"order_id": 7}).decode()
    first = await _add(redis, tenant_id=publisher, topic="orders.created", payload=payload)
    # consumer A reads the entry and dies before storing it
    read = await redis.xreadgroup(events.INGEST_GROUP, "A", {events.INGEST_STREAM: ">"})
    assert [e.decode() for e, _ in read[0][1]] == [first]
    # B does not take an entry a live consumer may still be handling...
    quiet = await _once(pool, redis, settings, clock, consumer="B")
    assert (quiet.claimed, quiet.read, quiet.ingested) == (0, 0, 0)
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    # ...but once it has been idle past the claim time, B reclaims and stores it
    took = await _once(pool, redis, settings, clock, consumer="B", claim_idle_ms=0)
    assert (took.claimed, took.ingested, took.duplicates) == (1, 1, 0)
    assert await _pending(redis) == 0

    # A consumer that stored an event but died before its ack: the redelivery is a duplicate
    second = await _add(redis, tenant_id=publisher, topic="orders.created", payload=payload)
    read = await redis.xreadgroup(events.INGEST_GROUP, "A", {events.INGEST_STREAM: ">"})
    fields = {k.decode(): v.decode() for k, v in read[0][1][0][1].items()}
    await consumer.ingest_entry(pool, second, fields, clock.now())
    again = await _once(pool, redis, settings, clock, consumer="B", claim_idle_ms=0)
    assert (again.claimed, again.ingested, again.duplicates) == (1, 1, 1)
    assert await _pending(redis) == 0

    stored = await pool.fetch("SELECT event_id, source FROM events ORDER BY seq")
    assert [(r["event_id"], r["source"]) for r in stored] == [
        (f"stream-{first}", "stream"),
        (f"stream-{second}", "stream"),
    ]
    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    assert await worker.run_once() == 2
    runs = await pool.fetch("SELECT status, output, event_id FROM runs ORDER BY event_id")
    assert [(r["status"], r["output"]) for r in runs] == [("succeeded", {"order": 7})] * 2


async def test_a_poison_entry_is_retried_then_parked_with_its_last_error(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, clock: FrozenClock, publisher: uuid.UUID
) -> None:
    settings = settings.replace(ingest_max_deliveries=3)

    async def handler(
        pool: asyncpg.Pool, entry_id: str, fields: dict[str, str], now: datetime
    ) -> dict[str, Any]:
        if fields.get("poison"):
            raise RuntimeError("handler blew up")
        return await consumer.ingest_entry(pool, entry_id, fields, now)

    poison = await _add(redis, tenant_id=publisher, topic="a.b", poison="yes")
    good = await _add(redis, tenant_id=publisher, topic="a.b", event_id="fine")
    results = []
    for _ in range(4):
        results.append(
            await _once(
                pool, redis, settings, clock, consumer="c", claim_idle_ms=0, handler=handler
            )
        )
    # delivered three times (one read, two reclaims), failing each time; the fourth is parked
    assert [(r.failed, r.parked) for r in results] == [(1, 0), (1, 0), (1, 0), (0, 1)]
    assert results[0].ingested == 1
    dead = await _dead(redis)
    assert list(dead) == [poison]
    assert dead[poison]["error"] == (
        "failed 3 deliveries; last error: RuntimeError: handler blew up"
    )
    assert orjson.loads(dead[poison]["fields"])["poison"] == "yes"
    assert await _pending(redis) == 0
    assert await redis.hlen(events.INGEST_ERRORS) == 0
    assert await pool.fetchval("SELECT event_id FROM events") == "fine"
    assert good != poison


async def test_an_entry_whose_consumers_keep_dying_is_parked(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, clock: FrozenClock, publisher: uuid.UUID
) -> None:
    settings = settings.replace(ingest_max_deliveries=2)
    entry = await _add(redis, tenant_id=publisher, topic="a.b")
    await redis.xreadgroup(events.INGEST_GROUP, "A", {events.INGEST_STREAM: ">"})
    await redis.xautoclaim(events.INGEST_STREAM, events.INGEST_GROUP, "A", 0)  # A died again
    result = await _once(pool, redis, settings, clock, consumer="B", claim_idle_ms=0)
    assert (result.claimed, result.parked, result.ingested) == (1, 1, 0)
    assert (await _dead(redis))[entry]["error"].startswith("not acknowledged after 2 deliveries")
    assert await pool.fetchval("SELECT count(*) FROM events") == 0


async def test_entries_that_can_never_be_ingested_are_parked_at_once_with_the_reason(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, clock: FrozenClock, publisher: uuid.UUID
) -> None:
    stranger = uuid.uuid4()
    reader = uuid.uuid4()
    await pool.execute(
        "INSERT INTO agents (id, name, scopes, secret_hash, created_at, updated_at) "
        "VALUES ($1, 'reader', ARRAY['tasks:read'], 'x', $2, $2)",
        reader,
        clock.now(),
    )
    cases = {
        await _add(redis, tenant_id=stranger, topic="a.b"): f"unknown tenant: {stranger}",
        await _add(redis, tenant_id="nope", topic="a.b"): "tenant_id is not a UUID: 'nope'",
        await _add(redis, topic="a.b"): "missing field tenant_id",
        await _add(redis, tenant_id=publisher): "missing field topic",
        await _add(redis, tenant_id=publisher, topic="a.b", payload="{oops"): "payload is not JSON",
        await _add(redis, tenant_id=publisher, topic="a.*"): "topic: 1-200 characters",
        await _add(redis, tenant_id=publisher, topic="a.b", payload='{"x": "\\u0000"}'): (
            "payload.x: text may not contain NUL"
        ),
        await _add(redis, tenant_id=reader, topic="a.b"): "tenant lacks the events:publish",
    }
    result = await _once(pool, redis, settings, clock, consumer="c")
    assert (result.read, result.parked, result.ingested, result.failed) == (8, 8, 0, 0)
    dead = await _dead(redis)
    for entry_id, reason in cases.items():
        assert dead[entry_id]["error"].startswith(reason), dead[entry_id]
        assert dead[entry_id]["deliveries"] == "1"
    assert await _pending(redis) == 0
    assert await pool.fetchval("SELECT count(*) FROM events") == 0


async def test_the_consumer_loop_ingests_what_producers_add(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, clock: FrozenClock, publisher: uuid.UUID
) -> None:
    await redis.delete(*KEYS)  # the loop creates the group itself
    stop = asyncio.Event()
    loop = asyncio.create_task(
        consumer.run_consumer(
            pool, redis, settings.replace(ingest_block_ms=50), clock, stop, name="loop"
        )
    )
    try:
        async with asyncio.timeout(30):
            while not await redis.exists(events.INGEST_STREAM):
                await asyncio.sleep(0.01)
            for i in range(3):
                await _add(redis, tenant_id=publisher, topic="a.b", event_id=f"e{i}")
            while await pool.fetchval("SELECT count(*) FROM events") < 3:
                await asyncio.sleep(0.02)
            while await _pending(redis):
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await loop
    assert sorted(r["event_id"] for r in await pool.fetch("SELECT event_id FROM events")) == [
        "e0",
        "e1",
        "e2",
    ]
