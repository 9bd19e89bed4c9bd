"""Stream names and event types, defined once."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import orjson
from redis.asyncio import Redis

from ordinaut.store import outbox

STREAM_PREFIX = "ordinaut"
LIFECYCLE_STREAM = f"{STREAM_PREFIX}:events"
INGEST_STREAM = f"{STREAM_PREFIX}:ingest"
DEAD_STREAM = f"{STREAM_PREFIX}:ingest:dead"

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
        rows = await outbox.pending(conn, batch)
        if not rows:
            return 0
        pipe = redis.pipeline(transaction=False)
        for r in rows:
            fields = {
                "event_id": str(r["event_id"]),
                "type": r["event_type"],
                "time": r["created_at"].isoformat(),
                "tenant_id": str(r["tenant_id"] or ""),
                "subject_id": str(r["subject_id"] or ""),
                "payload": orjson.dumps(r["payload"]).decode(),
            }
            pipe.xadd(LIFECYCLE_STREAM, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()
        await outbox.mark_relayed(conn, [r["seq"] for r in rows], now)
        return len(rows)
