"""The outbox relay: trimming, order, two relays at once (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from ordinaut import events
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.store import outbox


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = events.connect_redis(settings)
    await client.delete(events.LIFECYCLE_STREAM)
    yield client
    await client.delete(events.LIFECYCLE_STREAM)
    await client.aclose()


async def _append(pool: asyncpg.Pool, clock: FrozenClock, n: int, subjects: int = 7) -> None:
    ids = [uuid.uuid4() for _ in range(subjects)]
    await _write(
        pool,
        clock,
        [
            outbox.OutboxEvent("run.started", uuid.uuid4(), ids[i % subjects], {"i": i, "n": n})
            for i in range(n)
        ],
    )


async def _write(pool: asyncpg.Pool, clock: FrozenClock, evs: list[outbox.OutboxEvent]) -> None:
    async with pool.acquire() as conn:
        await outbox.append(conn, evs, now=clock.now())


async def _stream(redis: Redis) -> list[dict[str, str]]:
    entries = await redis.xrange(events.LIFECYCLE_STREAM)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def test_relay_trims_the_stream_to_about_maxlen(
    pool: asyncpg.Pool, redis: Redis, clock: FrozenClock
) -> None:
    await _append(pool, clock, 1_200)
    relayed = 0
    while n := await events.relay_once(pool, redis, now=clock.now(), batch=300, maxlen=50):
        relayed += n
    assert relayed == 1_200
    length = await redis.xlen(events.LIFECYCLE_STREAM)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default): about maxlen remain
    assert 50 <= length <= 250
    assert await outbox.backlog(pool) == 0


async def test_two_relays_at_once_publish_each_event_once_in_seq_order(
    pool: asyncpg.Pool, redis: Redis, clock: FrozenClock, settings: Settings
) -> None:
    other = events.connect_redis(settings)
    produced = asyncio.Event()

    async def produce() -> None:
        for _ in range(20):
            await _append(pool, clock, 40)
            await asyncio.sleep(0)
        produced.set()

    async def relay(client: Redis) -> int:
        total = 0
        while not produced.is_set() or await outbox.backlog(pool):
            total += await events.relay_pending(pool, client, clock.now, settings)
            await asyncio.sleep(0)
        return total

    try:
        async with asyncio.timeout(60):
            _, a, b = await asyncio.gather(produce(), relay(redis), relay(other))
    finally:
        await other.aclose()
    assert a + b == 800
    stream = await _stream(redis)
    assert len({e["event_id"] for e in stream}) == len(stream) == 800
    seqs = [int(e["seq"]) for e in stream]
    assert seqs == sorted(seqs)
    # order per subject: each subject's events arrive in the order they were written
    rows = await pool.fetch("SELECT event_id, subject_id FROM outbox ORDER BY seq")
    for subject in {r["subject_id"] for r in rows}:
        written = [str(r["event_id"]) for r in rows if r["subject_id"] == subject]
        published = [e["event_id"] for e in stream if e["subject_id"] == str(subject)]
        assert published == written


async def test_a_failed_publish_leaves_the_batch_pending(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    await _append(pool, clock, 5)
    gone = events.connect_redis(settings.replace(redis_url="unix:///nonexistent/redis.sock"))
    try:
        assert await events.relay_pending(pool, gone, clock.now, settings) == 0
    finally:
        await gone.aclose()
    assert await outbox.backlog(pool) == 5


async def test_a_redis_error_reply_leaves_the_batch_pending_and_the_connection_usable(
    pool: asyncpg.Pool, redis: Redis, clock: FrozenClock, settings: Settings
) -> None:
    await _append(pool, clock, 5)
    await redis.set(events.LIFECYCLE_STREAM, "not a stream")  # every XADD answers WRONGTYPE
    assert await events.relay_pending(pool, redis, clock.now, settings) == 0
    assert await outbox.backlog(pool) == 5
    await redis.delete(events.LIFECYCLE_STREAM)
    assert await redis.ping()
    assert await events.relay_pending(pool, redis, clock.now, settings) == 5
    stream = await _stream(redis)
    assert [json.loads(e["payload"])["i"] for e in stream] == [0, 1, 2, 3, 4]
    assert {e["type"] for e in stream} == {"run.started"}


async def test_unicode_payloads_reach_the_stream_intact(
    pool: asyncpg.Pool, redis: Redis, clock: FrozenClock
) -> None:
    text = "héllo ☃ 日本\r\n$3"
    await _write(pool, clock, [outbox.OutboxEvent("custom.greeting", None, None, {"text": text})])
    assert await events.relay_once(pool, redis, now=clock.now()) == 1
    [entry] = await _stream(redis)
    assert json.loads(entry["payload"]) == {"text": "héllo ☃ 日本\r\n$3"}
    assert entry["tenant_id"] == entry["subject_id"] == ""


async def test_a_batch_stops_at_its_byte_budget_and_an_oversized_event_still_goes(
    pool: asyncpg.Pool, redis: Redis, clock: FrozenClock
) -> None:
    sizes = (5_000, 300, 300, 300)
    blobs = [outbox.OutboxEvent("custom.big", None, None, {"blob": "x" * n}) for n in sizes]
    await _write(pool, clock, blobs)
    async with pool.acquire() as conn, conn.transaction():
        first = await outbox.pending_batch(conn, 100, max_bytes=1_000)
        assert first["n"] == 1  # bigger than the budget alone: it goes, by itself
        rest = await outbox.pending_batch(conn, 100, max_bytes=10_000)
        assert rest["n"] == 4
    batches = []
    while n := await events.relay_once(pool, redis, now=clock.now()):
        batches.append(n)
    assert sum(batches) == 4
    stream = await _stream(redis)
    assert [len(json.loads(e["payload"])["blob"]) for e in stream] == list(sizes)
