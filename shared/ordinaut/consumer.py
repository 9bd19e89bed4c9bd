"""The ingest stream's consumer group: external producers ``XADD`` events, event tasks run.

A producer adds an entry to ``INGEST_STREAM`` with the fields ``tenant_id`` (the publishing
agent's id), ``topic``, ``payload`` (JSON text, default ``{}``) and optionally ``event_id``
(default ``stream-<entry id>``, so a redelivered entry is the same event). Every worker
process reads the stream in the group ``INGEST_GROUP`` and hands each entry to
``ingest_event(..., source="stream")``, the path ``POST /events`` takes.

* An entry is acknowledged only after its event is stored (and its runs queued) in
  PostgreSQL; a consumer that dies in between leaves it pending.
* Each pass first reclaims (``XAUTOCLAIM``) entries pending longer than
  ``ingest_claim_idle_s``: far longer than one ingest transaction, so a live consumer's entry
  is never taken from it. Ingest dedupes on the event id, so a reclaimed entry whose event was
  stored before the crash queues nothing twice.
* An entry that can never be ingested as sent (missing fields, bad JSON, unknown tenant, a
  topic outside the alphabet) is parked at once in ``DEAD_STREAM`` with the reason. One that
  fails otherwise stays pending and is retried after the idle time; once its delivery count
  (``XPENDING``) passes ``ingest_max_deliveries`` it is parked with its last error. Parking
  and the acknowledgement are one ``MULTI``.
* While PostgreSQL is unreachable a pass stops at once, before claiming anything more, so an
  outage does not use up entries' deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from ordinaut import metrics, tracing
from ordinaut.clock import Clock
from ordinaut.config import Settings
from ordinaut.errors import Unavailable, ValidationFailed
from ordinaut.events import (
    DEAD_STREAM,
    INGEST_ERRORS,
    INGEST_GROUP,
    INGEST_STREAM,
    connect_redis,
)
from ordinaut.ingest import ingest_event
from ordinaut.pipeline.context import iso_utc
from ordinaut.store import events

log = logging.getLogger("ordinaut.consumer")

MAX_ERROR_LENGTH = 1_000
# the database is unreachable or overloaded: not the entry's fault, so it is not charged
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    Unavailable,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
)
# what pauses the consumer loop (and is retried with backoff) instead of ending it
PAUSING_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    asyncpg.PostgresError,
    *INFRASTRUCTURE_ERRORS,
)


class Rejected(Exception):
    """An entry that can never be ingested as sent: parked at once with this reason."""


Handler = Callable[[asyncpg.Pool, str, dict[str, str], datetime], Awaitable[dict[str, Any]]]


@dataclass
class ConsumeResult:
    """What one pass did."""

    read: int = 0
    claimed: int = 0
    ingested: int = 0
    duplicates: int = 0
    failed: int = 0
    parked: int = 0


async def ingest_entry(
    pool: asyncpg.Pool,
    entry_id: str,
    fields: dict[str, str],
    now: datetime,
    *,
    max_runs_per_minute: int = 0,
) -> dict[str, Any]:
    """Store one stream entry's event (the default handler); ``Rejected`` if it never can be."""
    for name in ("tenant_id", "topic"):
        if not fields.get(name):
            raise Rejected(f"missing field {name}")
    try:
        tenant_id = UUID(fields["tenant_id"])
    except ValueError:
        raise Rejected(f"tenant_id is not a UUID: {fields['tenant_id'][:100]!r}") from None
    try:
        payload = orjson.loads(fields["payload"]) if fields.get("payload") else {}
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"payload is not JSON: {exc}") from None
    async with pool.acquire() as conn:
        refusal = await events.publisher(conn, tenant_id)
    if refusal is not None:
        raise Rejected(f"{refusal}: {tenant_id}")
    try:
        # a producer's traceparent field: the runs this event causes continue its trace
        with tracing.span(
            "ingest", parent=fields.get("traceparent"), attributes={"ordinaut.entry": entry_id}
        ):
            return await ingest_event(
                pool,
                tenant_id=tenant_id,
                topic=fields["topic"],
                payload=payload,
                event_id=fields.get("event_id") or f"stream-{entry_id}",
                now=now,
                source="stream",
                max_runs_per_minute=max_runs_per_minute,
            )
    except ValidationFailed as exc:
        fields_named = ", ".join(str(d.get("field")) for d in exc.details or [])
        raise Rejected(f"{fields_named}: {exc.message}" if fields_named else exc.message) from None


async def ensure_group(redis: Redis) -> None:
    """Create the consumer group (and the stream) unless they exist; from the start, so
    entries added before any worker ran are read too."""
    try:
        await redis.xgroup_create(INGEST_STREAM, INGEST_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _entries(raw: Any) -> list[tuple[str, dict[str, str]]]:
    """[(id, fields)] from redis-py's stream entries (bytes or str), skipping deleted ones."""
    out = []
    for entry_id, fields in raw or []:
        if fields is None:  # claimed but trimmed away meanwhile
            continue
        out.append((_text(entry_id), {_text(k): _text(v) for k, v in fields.items()}))
    return out


async def _claim(
    redis: Redis, consumer: str, idle_ms: int, count: int
) -> list[tuple[str, dict[str, str], int]]:
    """Entries idle longer than ``idle_ms`` taken over, with their delivery counts."""
    reply = await redis.xautoclaim(
        INGEST_STREAM, INGEST_GROUP, consumer, min_idle_time=idle_ms, count=count
    )
    claimed = _entries(reply[1] if len(reply) > 1 else [])
    if not claimed:
        return []
    pipe = redis.pipeline(transaction=False)
    for entry_id, _ in claimed:
        pipe.xpending_range(INGEST_STREAM, INGEST_GROUP, entry_id, entry_id, 1)
    counts = {}
    for rows in await pipe.execute():
        for row in rows:
            counts[_text(row["message_id"])] = int(row["times_delivered"])
    return [(entry_id, fields, counts.get(entry_id, 1)) for entry_id, fields in claimed]


async def _read(
    redis: Redis, consumer: str, count: int, block_ms: int | None
) -> list[tuple[str, dict[str, str], int]]:
    reply: Any = await redis.xreadgroup(
        INGEST_GROUP, consumer, {INGEST_STREAM: ">"}, count=count, block=block_ms
    )
    entries: list[tuple[str, dict[str, str], int]] = []
    for _, raw in reply or []:
        entries.extend((entry_id, fields, 1) for entry_id, fields in _entries(raw))
    return entries


async def park(
    redis: Redis,
    entry_id: str,
    fields: dict[str, str],
    *,
    reason: str,
    deliveries: int,
    consumer: str,
    now: datetime,
    maxlen: int,
) -> None:
    """Move one entry to the dead stream with why, and acknowledge it, atomically."""
    dead = {
        "entry_id": entry_id,
        "error": reason[:MAX_ERROR_LENGTH],
        "deliveries": str(deliveries),
        "consumer": consumer,
        "parked_at": iso_utc(now),
        "fields": orjson.dumps(fields).decode(),
    }
    pipe = redis.pipeline(transaction=True)
    pipe.xadd(DEAD_STREAM, dead, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
    pipe.xack(INGEST_STREAM, INGEST_GROUP, entry_id)
    pipe.hdel(INGEST_ERRORS, entry_id)
    await pipe.execute()
    log.warning(
        "ingest entry parked", extra={"entry_id": entry_id, "error": reason[:MAX_ERROR_LENGTH]}
    )


async def consume_once(
    pool: asyncpg.Pool,
    redis: Redis,
    *,
    settings: Settings,
    clock: Clock,
    consumer: str,
    block_ms: int | None = None,
    claim_idle_ms: int | None = None,
    handler: Handler | None = None,
) -> ConsumeResult:
    """One pass: reclaim stale pending entries, read new ones, ingest each, ack or park.

    Up to ``ingest_concurrency`` entries are ingested at once (each its own transaction, so
    commits share WAL flushes); the stored ones are acknowledged together. ``block_ms`` waits
    that long for new entries (None: not at all). Raises on an infrastructure failure (Redis,
    or PostgreSQL unreachable) after acknowledging what was stored; the rest stays pending
    and is reclaimed later.
    """
    result = ConsumeResult()
    if handler is None:
        handler = functools.partial(
            ingest_entry, max_runs_per_minute=settings.max_runs_per_minute_per_agent
        )
    idle_ms = int(settings.ingest_claim_idle_s * 1000) if claim_idle_ms is None else claim_idle_ms
    count = settings.ingest_batch
    try:
        claimed = await _claim(redis, consumer, idle_ms, count)
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        await ensure_group(redis)
        claimed = []
    result.claimed = len(claimed)
    fresh = await _read(redis, consumer, count, None if claimed else block_ms)
    result.read = len(fresh)
    gate = asyncio.Semaphore(max(1, settings.ingest_concurrency))
    stop = asyncio.Event()  # set by the first infrastructure failure: start nothing more

    async def one(entry_id: str, fields: dict[str, str], deliveries: int) -> str:
        async with gate:
            if stop.is_set():
                return "left"
            try:
                return await _handle(
                    pool, redis, settings, clock, consumer, handler, entry_id, fields, deliveries
                )
            except INFRASTRUCTURE_ERRORS:
                stop.set()
                raise

    entries = claimed + fresh
    outcomes = await asyncio.gather(*(one(*e) for e in entries), return_exceptions=True)
    stored = [e[0] for e, o in zip(entries, outcomes, strict=True) if o in ("stored", "duplicate")]
    if stored:
        pipe = redis.pipeline(transaction=True)
        pipe.xack(INGEST_STREAM, INGEST_GROUP, *stored)
        pipe.hdel(INGEST_ERRORS, *stored)
        await pipe.execute()
    result.ingested = len(stored)
    result.duplicates = outcomes.count("duplicate")
    result.parked = outcomes.count("parked")
    result.failed = outcomes.count("failed")
    for label, n in (
        ("ingested", result.ingested - result.duplicates),
        ("duplicate", result.duplicates),
        ("parked", result.parked),
        ("failed", result.failed),
        ("reclaimed", result.claimed),
    ):
        if n:
            metrics.INGEST_ENTRIES.labels(label).inc(n)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return result


async def _handle(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    clock: Clock,
    consumer: str,
    handler: Handler,
    entry_id: str,
    fields: dict[str, str],
    deliveries: int,
) -> str:
    """One entry: "stored" / "duplicate" (ack it), "parked", or "failed" (left pending)."""
    now = clock.now()
    if deliveries > settings.ingest_max_deliveries:
        last = await redis.hget(INGEST_ERRORS, entry_id)
        reason = (
            f"failed {deliveries - 1} deliveries; last error: {_text(last)}"
            if last is not None
            else f"not acknowledged after {deliveries - 1} deliveries "
            "(the consumer handling it stopped)"
        )
        await park(
            redis,
            entry_id,
            fields,
            reason=reason,
            deliveries=deliveries - 1,
            consumer=consumer,
            now=now,
            maxlen=settings.stream_maxlen,
        )
        return "parked"
    try:
        summary = await handler(pool, entry_id, fields, now)
    except Rejected as exc:
        await park(
            redis,
            entry_id,
            fields,
            reason=str(exc),
            deliveries=deliveries,
            consumer=consumer,
            now=now,
            maxlen=settings.stream_maxlen,
        )
        return "parked"
    except INFRASTRUCTURE_ERRORS:
        raise  # not the entry's fault: it stays pending, nothing is charged to it
    except Exception as exc:  # a failure of this entry: retried, then parked
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
        await redis.hset(INGEST_ERRORS, entry_id, error)
        log.warning(
            "ingest entry failed; it will be retried",
            extra={"entry_id": entry_id, "deliveries": deliveries, "error": error},
        )
        return "failed"
    return "duplicate" if summary.get("duplicate") else "stored"


async def run_consumer(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    clock: Clock,
    stop: asyncio.Event,
    *,
    name: str,
) -> None:
    """Consume until ``stop``: passes block up to ``ingest_block_ms`` for new entries; a
    failure backs off (0.5 s doubling to 5 s) and the pass is tried again."""
    backoff = 0.0
    while not stop.is_set():
        try:
            await consume_once(
                pool,
                redis,
                settings=settings,
                clock=clock,
                consumer=name,
                block_ms=settings.ingest_block_ms,
            )
            backoff = 0.0
            continue
        except PAUSING_ERRORS as exc:
            backoff = min(5.0, backoff * 2 or 0.5)
            log.warning("ingest consumer paused", extra={"error": repr(exc), "retry_in_s": backoff})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)


async def run_consumer_process(settings: Settings, stop: asyncio.Event) -> None:
    """The consumer on its own (``ordinaut events-consumer``)."""
    import os
    import socket

    from ordinaut.clock import DatabaseClock
    from ordinaut.store import db

    pool = await db.create_pool(settings, min_size=1, max_size=settings.ingest_concurrency + 1)
    clock = DatabaseClock()
    await db.sync_clock(pool, clock)
    redis = connect_redis(settings)
    name = f"{socket.gethostname()}:{os.getpid()}:consumer"

    async def resync() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 30.0)
            with contextlib.suppress(TimeoutError, OSError, asyncpg.PostgresError):
                await db.sync_clock(pool, clock)

    syncing = asyncio.create_task(resync())
    log.info("ingest consumer started", extra={"stream": INGEST_STREAM, "consumer": name})
    try:
        await run_consumer(pool, redis, settings, clock, stop, name=name)
    finally:
        syncing.cancel()
        await redis.aclose()
        await pool.close()
        log.info("ingest consumer stopped")
