"""Transactional outbox: lifecycle events written beside the change they describe."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.store.db import json_text

INSERT_EVENTS = """
INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
SELECT e.event_id, e.event_type, e.tenant_id, e.subject_id, e.payload::jsonb, $6
FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[])
    AS e(event_id, event_type, tenant_id, subject_id, payload)
"""


@dataclass(frozen=True)
class OutboxEvent:
    event_type: str
    tenant_id: UUID | None
    subject_id: UUID | None
    payload: dict[str, Any]
    event_id: UUID = field(default_factory=uuid.uuid4)


async def append(conn: asyncpg.Connection, events: Sequence[OutboxEvent], *, now: datetime) -> None:
    """Write events in one statement (call inside the change's transaction)."""
    if not events:
        return
    await conn.execute(
        INSERT_EVENTS,
        [e.event_id for e in events],
        [e.event_type for e in events],
        [e.tenant_id for e in events],
        [e.subject_id for e in events],
        [json_text(e.payload) for e in events],
        now,
    )


RELAY_LOCK_ID = 0x4F52_4452  # one relay publishes at a time, so stream order = outbox order

TRY_RELAY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
# The same rows already rendered as the stream entry's text fields: formatting in SQL keeps
# the relay's Python work per event to building one command.
PENDING_FIELDS = """
SELECT seq, seq::text AS seq_text, event_id::text AS event_id, event_type AS type,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00' AS time,
       coalesce(tenant_id::text, '') AS tenant_id, coalesce(subject_id::text, '') AS subject_id,
       payload::text AS payload
FROM outbox WHERE relayed_at IS NULL
ORDER BY seq
LIMIT $1
"""
MARK_RELAYED = "UPDATE outbox SET relayed_at = $2 WHERE seq = ANY($1::bigint[])"
BACKLOG = "SELECT count(*) FROM outbox WHERE relayed_at IS NULL"


async def try_relay_lock(conn: asyncpg.Connection) -> bool:
    """Inside a transaction: True when this relay may publish now."""
    return bool(await conn.fetchval(TRY_RELAY_LOCK, RELAY_LOCK_ID))


async def pending_fields(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Pending events in seq order, as the stream's text fields."""
    return await conn.fetch(PENDING_FIELDS, limit)


async def mark_relayed(conn: asyncpg.Connection, seqs: list[int], now: datetime) -> None:
    await conn.execute(MARK_RELAYED, seqs, now)


async def backlog(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval(BACKLOG))


# The live stream (SSE) reads one tenant's events after a cursor in seq order. The primary key
# bounds the scan to rows after the cursor, so no extra index slows the hot path's inserts.
# Patterns use * as the only wildcard (LIKE's own wildcards are escaped).
TENANT_AFTER = r"""
SELECT seq, event_id, event_type, tenant_id, subject_id, payload, created_at
FROM outbox
WHERE seq > $2 AND tenant_id = $1
  AND ($3::text IS NULL
       OR event_type LIKE replace(replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_'),
                                  '*', '%'))
  AND ($4::text IS NULL
       OR payload ->> 'topic' LIKE replace(replace(replace(replace($4, '\', '\\'), '%', '\%'),
                                                   '_', '\_'), '*', '%'))
  AND ($5::uuid IS NULL OR subject_id = $5 OR payload ->> 'task_id' = $5::text)
ORDER BY seq
LIMIT $6
"""
LATEST_SEQ = "SELECT coalesce(max(seq), 0) FROM outbox"


async def tenant_after(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    after: int,
    *,
    type_pattern: str | None,
    topic_pattern: str | None,
    task_id: UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """One tenant's events with ``seq > after``, oldest first, filtered."""
    return await conn.fetch(
        TENANT_AFTER, tenant_id, after, type_pattern, topic_pattern, task_id, limit
    )


async def latest_seq(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The highest seq written so far (0 for an empty outbox): where a live stream starts."""
    return int(await conn.fetchval(LATEST_SEQ))
