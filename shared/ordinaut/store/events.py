"""Events in: store an event once per (tenant, event id), find the tasks it triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

INSERT_EVENT = """
INSERT INTO events (tenant_id, event_id, topic, payload, source, received_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, event_id) DO NOTHING
RETURNING seq
"""
SET_MATCHED = "UPDATE events SET tasks_matched = $2 WHERE seq = $1"
GET_EVENT = """
SELECT event_id, topic, payload, source, received_at, tasks_matched
FROM events WHERE tenant_id = $1 AND event_id = $2
"""
# A task's pattern is its topic, exact or with * wildcards ("orders.*"); LIKE special
# characters in the pattern are escaped so only * is a wildcard.
MATCH_TASKS = r"""
SELECT id, priority, max_retries, concurrency_key, overlap_policy
FROM tasks
WHERE created_by = $1 AND schedule_kind = 'event' AND status = 'active'
  AND $2 LIKE replace(replace(replace(replace(schedule_expr, '\', '\\'), '%', '\%'), '_', '\_'),
                      '*', '%')
"""
RECENT = """
SELECT event_id, topic, payload, source, received_at, tasks_matched
FROM events WHERE tenant_id = $1 AND ($2::text IS NULL OR topic = $2)
ORDER BY seq DESC LIMIT $3
"""
TOPICS = """
SELECT schedule_expr AS topic, count(*) AS tasks
FROM tasks
WHERE created_by = $1 AND schedule_kind = 'event' AND status = 'active'
GROUP BY schedule_expr ORDER BY schedule_expr
"""


async def insert_event(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    event_id: str,
    topic: str,
    payload: Any,
    source: str,
    now: datetime,
) -> int | None:
    """Store the event; None when this (tenant, event id) was stored before."""
    seq: int | None = await conn.fetchval(
        INSERT_EVENT, tenant_id, event_id, topic, payload, source, now
    )
    return seq


async def set_matched(conn: asyncpg.Connection, seq: int, count: int) -> None:
    await conn.execute(SET_MATCHED, seq, count)


async def get_event(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, event_id: str
) -> dict[str, Any] | None:
    row = await conn.fetchrow(GET_EVENT, tenant_id, event_id)
    return dict(row) if row else None


async def matching_tasks(
    conn: asyncpg.Connection, tenant_id: UUID, topic: str
) -> list[asyncpg.Record]:
    return await conn.fetch(MATCH_TASKS, tenant_id, topic)


async def recent(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, *, topic: str | None, limit: int
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(RECENT, tenant_id, topic, limit)]


async def topics(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(TOPICS, tenant_id)]
