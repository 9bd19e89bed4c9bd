"""Stream names and event types, defined once; the outbox relay (outbox -> Redis Streams).

The relay runs inside every worker process (``run_worker``) and alone as ``ordinaut relay``.
Order: one relay publishes at a time (advisory lock) in outbox ``(tx, seq)`` order, and only
rows whose transaction is older than every transaction still running
(``pg_snapshot_xmin``): such rows are final, so the relay keeps a single cursor row and
nothing can ever commit behind it. Events about one subject (a task, a run) come from
transactions that lock that subject's row first, so a later change has a later transaction id
and the stream keeps their order. A long-running transaction delays the relay; it never makes
it skip an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from ordinaut import metrics
from ordinaut.config import Settings
from ordinaut.store import outbox

if TYPE_CHECKING:  # redis is imported where it is used: an API cold start does not need it
    from redis.asyncio import Redis

log = logging.getLogger("ordinaut.events")

STREAM_PREFIX = "ordinaut"
LIFECYCLE_STREAM = f"{STREAM_PREFIX}:events"
INGEST_STREAM = f"{STREAM_PREFIX}:ingest"
INGEST_GROUP = f"{STREAM_PREFIX}:ingest-consumers"
DEAD_STREAM = f"{STREAM_PREFIX}:ingest:dead"
# entry id -> the last error an ingest attempt raised, so whoever parks the entry can say why
INGEST_ERRORS = f"{STREAM_PREFIX}:ingest:errors"

TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TASK_PAUSED = "task.paused"
TASK_RESUMED = "task.resumed"
TASK_CANCELED = "task.canceled"
TASK_DELETED = "task.deleted"
TASK_SNOOZED = "task.snoozed"
RUN_QUEUED = "run.queued"
RUN_STARTED = "run.started"
RUN_SUCCEEDED = "run.succeeded"
RUN_FAILED = "run.failed"
RUN_RETRIED = "run.retried"
RUN_DEAD_LETTERED = "run.dead_lettered"
RUN_CANCELED = "run.canceled"
RUN_SKIPPED = "run.skipped"
EVENT_RECEIVED = "event.received"
RUNS_THROTTLED = "runs.throttled"  # runs an event would have queued, refused by the run quota
CUSTOM_PREFIX = "custom."  # event.publish from a pipeline: "custom.<topic>"

REDIS_CONNECT_TIMEOUT_S = 2.0
REDIS_SOCKET_TIMEOUT_S = 10.0


def connect_redis(settings: Settings) -> Redis:
    """A client for the relay and the consumer: bounded waits, so a hung Redis never holds
    the relay's transaction (and its advisory lock) open for long."""
    from redis.asyncio import Redis

    client: Redis = Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        # above the consumer's XREADGROUP BLOCK, which keeps the socket quiet that long
        socket_timeout=REDIS_SOCKET_TIMEOUT_S + settings.ingest_block_ms / 1000.0,
        health_check_interval=30,
    )
    return client


# One EVAL appends a whole batch: a pipeline of XADDs cost ~40 µs of relay CPU per event in
# redis-py's per-command packing and reply parsing, one script call costs a few. Redis runs a
# script to the end without interleaving other commands, so the batch lands in order.
XADD_BATCH = b"""
local n = 0
for i = 2, #ARGV, 7 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event_id', ARGV[i],
             'seq', ARGV[i + 1], 'type', ARGV[i + 2], 'time', ARGV[i + 3],
             'tenant_id', ARGV[i + 4], 'subject_id', ARGV[i + 5], 'payload', ARGV[i + 6])
  n = n + 1
end
return n
"""


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


async def publish_batch(redis: Redis, count: int, fields: bytes, maxlen: int) -> None:
    """Append ``count`` events to the lifecycle stream with one EVAL.

    ``fields`` is their seven fields each (``outbox.RELAY_FIELDS`` order), already in the
    wire format: only the command's header is built here.
    """
    from redis.exceptions import ResponseError

    head = (b"EVAL", XADD_BATCH, b"1", LIFECYCLE_STREAM.encode(), str(maxlen).encode())
    command = b"".join(
        (b"*%d\r\n" % (len(head) + len(outbox.RELAY_FIELDS) * count), *map(_bulk, head), fields)
    )
    pool = redis.connection_pool
    conn = await pool.get_connection()
    try:
        await conn.send_packed_command(command, check_health=True)
        reply = await conn.read_response()
    except ResponseError:
        raise  # the script's error is its whole reply: the connection is in step
    except BaseException:
        # a half-read reply must never be read by the connection's next user
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)
    if reply != count:
        raise ResponseError(f"XADD batch appended {reply} of {count} events")


async def relay_once(
    pool: asyncpg.Pool, redis: Redis, *, now: datetime, batch: int = 500, maxlen: int = 100_000
) -> int:
    """Publish pending outbox events to the lifecycle stream in order; returns how many.

    One relay at a time holds the advisory lock, so two relays never publish the same event in
    the normal path; if Redis fails mid-batch the rows stay pending and are published again
    (consumers dedupe on ``event_id``).
    """
    async with pool.acquire() as conn, conn.transaction():
        if not await outbox.try_relay_lock(conn):
            return 0
        pending = await outbox.pending_batch(conn, batch)
        count = int(pending["n"])
        if not count:
            return 0
        await publish_batch(redis, count, pending["body"].encode(), maxlen)
        await outbox.advance_cursor(conn, pending["last_tx"], pending["last_seq"])
    metrics.EVENTS_RELAYED.inc(count)
    return count


async def relay_pending(
    pool: asyncpg.Pool, redis: Redis, now: Callable[[], datetime], settings: Settings
) -> int:
    """Relay until the outbox is empty (or another relay holds the lock); returns how many.

    A Redis failure ends the pass quietly: the rows stay in the outbox, /health reports the
    backlog, and the next pass publishes them in order.
    """
    from redis.exceptions import RedisError

    total = 0
    try:
        while n := await relay_once(
            pool, redis, now=now(), batch=settings.relay_batch, maxlen=settings.stream_maxlen
        ):
            total += n
    except RedisError as exc:
        log.warning("event relay paused: redis unavailable", extra={"error": repr(exc)})
    return total


async def run_relay(settings: Settings, stop: asyncio.Event) -> None:
    """The relay on its own (``ordinaut relay``): a pass every ``relay_interval_s``."""
    from ordinaut.clock import DatabaseClock
    from ordinaut.store import db

    pool = await db.create_pool(settings, min_size=1, max_size=2)
    clock = DatabaseClock()
    await db.sync_clock(pool, clock)
    redis = connect_redis(settings)
    log.info("event relay started", extra={"stream": LIFECYCLE_STREAM})
    try:
        while not stop.is_set():
            try:
                await db.sync_clock(pool, clock)
                await relay_pending(pool, redis, clock.now, settings)
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("event relay failed", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.relay_interval_s)
    finally:
        await redis.aclose()
        await pool.close()
        log.info("event relay stopped")
