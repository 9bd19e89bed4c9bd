"""Events in: store an event once per (tenant, event id), find the tasks it triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.store.db import Connection, one_row

INSERT_EVENT = """
INSERT INTO events (tenant_id, event_id, topic, payload, source, received_at, depth)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, event_id) DO NOTHING
RETURNING seq
"""
SET_MATCHED = "UPDATE events SET tasks_matched = $2 WHERE seq = $1"
GET_EVENT = """
SELECT event_id, topic, payload, source, received_at, tasks_matched
FROM events WHERE tenant_id = $1 AND event_id = $2
"""
# A task's pattern is its topic, exact or with * wildcards ("orders.*"); LIKE special
# characters in the pattern are escaped so only * is a wildcard. A pattern prefixed "shared:"
# is a subscription across tenants: it only matches topics an admin declared shared. Tasks of
# a deactivated agent match nothing.
MATCH_OWN = r"""
SELECT id, created_by, priority, max_retries, concurrency_key, overlap_policy,
       payload -> 'filter' AS filter, payload -> 'params' AS params
FROM tasks
WHERE created_by = $1 AND schedule_kind = 'event' AND status = 'active'
  AND schedule_expr NOT LIKE 'shared:%'
  AND EXISTS (SELECT 1 FROM agents a WHERE a.id = created_by AND a.is_active)
  AND $2 LIKE replace(replace(replace(replace(schedule_expr, '\', '\\'), '%', '\%'), '_', '\_'),
                      '*', '%')
ORDER BY id
"""
MATCH_SHARED = r"""
SELECT id, created_by, priority, max_retries, concurrency_key, overlap_policy,
       payload -> 'filter' AS filter, payload -> 'params' AS params
FROM tasks
WHERE schedule_kind = 'event' AND status = 'active' AND schedule_expr LIKE 'shared:%'
  AND EXISTS (SELECT 1 FROM agents a WHERE a.id = created_by AND a.is_active)
  AND $1 LIKE replace(replace(replace(replace(substr(schedule_expr, 8), '\', '\\'), '%', '\%'),
                      '_', '\_'), '*', '%')
ORDER BY created_by, id
"""
IS_SHARED = r"""
SELECT EXISTS (
    SELECT 1 FROM shared_topics
    WHERE $1 LIKE replace(replace(replace(replace(pattern, '\', '\\'), '%', '\%'), '_', '\_'),
                          '*', '%')
)
"""
INSERT_COPY = """
INSERT INTO events (tenant_id, event_id, topic, payload, source, received_at, tasks_matched,
                    origin_tenant, origin_event_id, depth)
VALUES ($1, $2, $3, $4, 'shared', $5, $6, $7, $8, $9)
ON CONFLICT (tenant_id, event_id) DO NOTHING
RETURNING seq
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
    conn: Connection,
    *,
    tenant_id: UUID,
    event_id: str,
    topic: str,
    payload: Any,
    source: str,
    now: datetime,
    depth: int = 0,
) -> int | None:
    """Store the event; None when this (tenant, event id) was stored before."""
    seq: int | None = await conn.fetchval(
        INSERT_EVENT, tenant_id, event_id, topic, payload, source, now, depth
    )
    return seq


async def set_matched(conn: Connection, seq: int, count: int) -> None:
    await conn.execute(SET_MATCHED, seq, count)


async def get_event(
    conn: Connection | asyncpg.Pool, tenant_id: UUID, event_id: str
) -> dict[str, Any] | None:
    row = await conn.fetchrow(GET_EVENT, tenant_id, event_id)
    return dict(row) if row else None


async def matching_tasks(conn: Connection, tenant_id: UUID, topic: str) -> list[asyncpg.Record]:
    """The tenant's own active event tasks whose pattern matches ``topic``."""
    return await conn.fetch(MATCH_OWN, tenant_id, topic)


async def shared_subscribers(conn: Connection, topic: str) -> list[asyncpg.Record]:
    """Every tenant's active ``shared:`` subscriptions matching ``topic``, by owner."""
    return await conn.fetch(MATCH_SHARED, topic)


async def is_shared(conn: Connection, topic: str) -> bool:
    """Whether an admin declared a shared-topic pattern that matches ``topic``."""
    return bool(await conn.fetchval(IS_SHARED, topic))


async def insert_copy(
    conn: Connection,
    *,
    tenant_id: UUID,
    event_id: str,
    topic: str,
    payload: Any,
    now: datetime,
    tasks_matched: int,
    origin_tenant: UUID,
    origin_event_id: str,
    depth: int = 0,
) -> bool:
    """Store a shared event in a subscriber's tenant; False when it was stored before."""
    seq = await conn.fetchval(
        INSERT_COPY,
        tenant_id,
        event_id,
        topic,
        payload,
        now,
        tasks_matched,
        origin_tenant,
        origin_event_id,
        depth,
    )
    return seq is not None


async def recent(
    conn: Connection | asyncpg.Pool, tenant_id: UUID, *, topic: str | None, limit: int
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(RECENT, tenant_id, topic, limit)]


async def topics(conn: Connection | asyncpg.Pool, tenant_id: UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(TOPICS, tenant_id)]


# Shared topics: declared by an admin, readable by every agent.
INSERT_SHARED = """
INSERT INTO shared_topics (pattern, created_by, created_at) VALUES ($1, $2, $3)
ON CONFLICT (pattern) DO NOTHING
RETURNING pattern, created_by, created_at
"""
GET_SHARED = "SELECT pattern, created_by, created_at FROM shared_topics WHERE pattern = $1"
LIST_SHARED = "SELECT pattern, created_by, created_at FROM shared_topics ORDER BY pattern"
DELETE_SHARED = "DELETE FROM shared_topics WHERE pattern = $1 RETURNING pattern"


async def declare_shared(
    conn: Connection | asyncpg.Pool, pattern: str, admin_id: UUID, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Declare a shared-topic pattern; returns it and whether it is new (idempotent)."""
    row = await conn.fetchrow(INSERT_SHARED, pattern, admin_id, now)
    if row is not None:
        return dict(row), True
    existing = await conn.fetchrow(GET_SHARED, pattern)
    return dict(one_row(existing)), False


async def list_shared(conn: Connection | asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LIST_SHARED)]


async def delete_shared(conn: Connection | asyncpg.Pool, pattern: str) -> bool:
    """Remove a shared-topic pattern; False when there was none."""
    return await conn.fetchval(DELETE_SHARED, pattern) is not None


# The ingest consumer accepts entries only for an active agent allowed to publish.
PUBLISHER = """
SELECT is_active, scopes && ARRAY['events:publish', 'admin']::text[] AS may_publish
FROM agents WHERE id = $1
"""


async def publisher(conn: Connection | asyncpg.Pool, agent_id: UUID) -> str | None:
    """None when ``agent_id`` may publish events, else why not."""
    row = await conn.fetchrow(PUBLISHER, agent_id)
    if row is None:
        return "unknown tenant"
    if not row["is_active"]:
        return "tenant is deactivated"
    if not row["may_publish"]:
        return "tenant lacks the events:publish scope"
    return None
