"""Run outcomes routed after the fact: the 'outcomes' outbox cursor and notification deliveries.

The outcome router reads the outbox after its own cursor (rows settled as in the lifecycle
relay, ``store/outbox.py``) and moves the cursor in the transaction that writes what the
outcomes caused, so each recorded outcome is routed once. Deliveries are leased with
``FOR UPDATE SKIP LOCKED`` and every later write is fenced on the lease token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.store.db import json_text

ROUTE_LOCK_ID = 0x4F52_4E54  # one router at a time, so the cursor moves in order
CURSOR_NAME = "outcomes"
TRY_ROUTE_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
CURSOR = "SELECT last_tx, last_seq FROM relay_cursor WHERE name = 'outcomes'"
ADVANCE = "UPDATE relay_cursor SET last_tx = $1, last_seq = $2 WHERE name = 'outcomes'"
# The next settled outbox rows after the cursor ($3 at most, the window), and of those the run
# outcomes ($4: their event types), each with its task (every run-end payload names it). No
# join here: most outcomes need nothing routed, and what they need is looked up per distinct
# task and owner (RUN_DETAILS only for the outcomes that do). A window without outcomes still
# moves the cursor.
OUTCOMES_AFTER = """
WITH w AS (
    SELECT tx, seq, event_id, event_type, tenant_id, subject_id, payload, created_at
    FROM outbox
    WHERE (tx, seq) > ($1::xid8, $2::bigint) AND tx < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx, seq
    LIMIT $3
), last AS (
    SELECT tx, seq FROM w ORDER BY tx DESC, seq DESC LIMIT 1
)
SELECT last.tx AS last_tx, last.seq AS last_seq, x.*
FROM last LEFT JOIN LATERAL (
    SELECT w.seq, w.event_id, w.event_type, w.tenant_id AS owner_id, w.subject_id AS run_id,
           w.payload, w.created_at AS recorded_at, (w.payload ->> 'task_id')::uuid AS task_id
    FROM w
    WHERE w.event_type = ANY($4::text[]) AND w.tenant_id IS NOT NULL
      AND w.subject_id IS NOT NULL AND w.payload ? 'task_id'
) x ON true
ORDER BY x.seq
"""
# The notify targets of the tasks that have any (one probe per distinct task of a window).
NOTIFYING = """
SELECT id, payload -> 'notify' AS notify FROM tasks
WHERE id = ANY($1::uuid[]) AND payload ? 'notify'
"""
# What routing an outcome needs from its run: the attempt, the error, the task's title and the
# depth of the event that started the run. Bound to the owner the outbox row names.
RUN_DETAILS = """
SELECT r.id, r.attempt, r.error, t.title, coalesce(e.depth, 0) AS cause_depth
FROM runs r
JOIN tasks t ON t.id = r.task_id
LEFT JOIN events e ON r.event_id IS NOT NULL AND e.tenant_id = r.owner_id
                  AND e.event_id = r.event_id
WHERE r.id = ANY($1::uuid[])
"""
# Which (owner, topic) pairs have an event task of the owner's own listening: only those
# outcomes become lifecycle events (the same pattern rule as store/events.py MATCH_OWN).
SUBSCRIBED = r"""
SELECT DISTINCT q.owner_id, q.topic
FROM unnest($1::uuid[], $2::text[]) AS q(owner_id, topic)
WHERE EXISTS (
    SELECT 1 FROM tasks
    WHERE created_by = q.owner_id AND schedule_kind = 'event' AND status = 'active'
      AND schedule_expr NOT LIKE 'shared:%'
      AND q.topic LIKE replace(replace(replace(replace(schedule_expr, '\', '\\'), '%', '\%'),
                                       '_', '\_'), '*', '%')
)
"""
INSERT_DELIVERIES = """
INSERT INTO notifications (id, owner_id, run_id, task_id, source_event_id, outcome, url,
                           secret_name, body, next_attempt_at, created_at, updated_at)
SELECT d.id, d.owner_id, d.run_id, d.task_id, d.source_event_id, d.outcome, d.url,
       d.secret_name, d.body::jsonb, $9, $9, $9
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[],
            $7::text[], $8::text[], $10::text[])
    AS d(id, owner_id, run_id, task_id, source_event_id, outcome, url, secret_name, body)
ON CONFLICT (source_event_id, url) DO NOTHING
"""


@dataclass(frozen=True)
class NewDelivery:
    id: UUID
    owner_id: UUID
    run_id: UUID
    task_id: UUID
    source_event_id: UUID
    outcome: str
    url: str
    secret_name: str
    body: dict[str, Any]


async def try_route_lock(conn: asyncpg.Connection) -> bool:
    """Inside a transaction: True when this router may route now."""
    return bool(await conn.fetchval(TRY_ROUTE_LOCK, ROUTE_LOCK_ID))


async def outcomes_after_cursor(
    conn: asyncpg.Connection, limit: int, event_types: Sequence[str]
) -> tuple[tuple[Any, int] | None, list[asyncpg.Record]]:
    """The window's end ``(last_tx, last_seq)`` (None: nothing new) and its run outcomes."""
    cursor = await conn.fetchrow(CURSOR)
    rows = await conn.fetch(
        OUTCOMES_AFTER, cursor["last_tx"], cursor["last_seq"], limit, list(event_types)
    )
    if not rows:
        return None, []
    end = (rows[0]["last_tx"], int(rows[0]["last_seq"]))
    return end, [r for r in rows if r["seq"] is not None]


async def notifying(conn: asyncpg.Connection, task_ids: Sequence[UUID]) -> dict[UUID, Any]:
    """task id -> its notify targets, for the tasks among ``task_ids`` that have any."""
    if not task_ids:
        return {}
    return {r["id"]: r["notify"] for r in await conn.fetch(NOTIFYING, list(task_ids))}


async def run_details(conn: asyncpg.Connection, run_ids: Sequence[UUID]) -> dict[UUID, Any]:
    """run id -> (attempt, error, title, cause_depth) for the runs that still exist."""
    if not run_ids:
        return {}
    return {r["id"]: r for r in await conn.fetch(RUN_DETAILS, list(run_ids))}


async def advance(conn: asyncpg.Connection, last_tx: Any, last_seq: int) -> None:
    await conn.execute(ADVANCE, last_tx, last_seq)


async def subscribed(
    conn: asyncpg.Connection, pairs: Sequence[tuple[UUID, str]]
) -> set[tuple[UUID, str]]:
    """The (owner, topic) pairs with an active event task of the owner's matching the topic."""
    if not pairs:
        return set()
    rows = await conn.fetch(SUBSCRIBED, [o for o, _ in pairs], [t for _, t in pairs])
    return {(r["owner_id"], r["topic"]) for r in rows}


async def insert_deliveries(
    conn: asyncpg.Connection, deliveries: Sequence[NewDelivery], *, now: datetime
) -> None:
    """Queue deliveries, due now; one per (outcome, URL) whatever happens twice."""
    if not deliveries:
        return
    await conn.execute(
        INSERT_DELIVERIES,
        [d.id for d in deliveries],
        [d.owner_id for d in deliveries],
        [d.run_id for d in deliveries],
        [d.task_id for d in deliveries],
        [d.source_event_id for d in deliveries],
        [d.outcome for d in deliveries],
        [d.url for d in deliveries],
        [d.secret_name for d in deliveries],
        now,
        [json_text(d.body) for d in deliveries],
    )


# Deliveries whose last attempt was leased and never finished (the deliverer died): given up.
EXHAUSTED = """
UPDATE notifications SET status = 'failed', next_attempt_at = NULL, lease_token = NULL,
    updated_at = $1,
    last_error = 'the deliverer stopped during the last attempt; given up'
WHERE status = 'pending' AND next_attempt_at <= $1 AND attempts >= $2
RETURNING id
"""
# Lease due deliveries: the attempt counts now, and until the lease ends ($3 s) the row is not
# due; a deliverer that dies mid-request leaves it due again then.
LEASE = """
WITH c AS (
    SELECT id FROM notifications
    WHERE status = 'pending' AND next_attempt_at <= $1 AND attempts < $4
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE notifications n SET attempts = n.attempts + 1, lease_token = gen_random_uuid(),
    next_attempt_at = $1 + make_interval(secs => $3), updated_at = $1
FROM c WHERE n.id = c.id
RETURNING n.id, n.owner_id, n.run_id, n.url, n.secret_name, n.body, n.outcome, n.attempts,
          n.lease_token
"""
# One attempt's result, fenced on the lease: delivered, due again at $4, or given up.
FINISH = """
UPDATE notifications SET status = $3, next_attempt_at = $4, lease_token = NULL,
    last_status_code = $5, last_error = $6, delivered_at = $7, updated_at = $8,
    history = history || jsonb_build_array($9::text::jsonb)
WHERE id = $1 AND lease_token = $2
RETURNING id
"""


async def give_up_exhausted(
    conn: asyncpg.Connection | asyncpg.Pool, *, now: datetime, max_attempts: int
) -> int:
    return len(await conn.fetch(EXHAUSTED, now, max_attempts))


async def lease(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    now: datetime,
    limit: int,
    lease_s: float,
    max_attempts: int,
) -> list[asyncpg.Record]:
    """Lease up to ``limit`` due deliveries (attempt + 1 each)."""
    return await conn.fetch(LEASE, now, limit, lease_s, max_attempts)


async def finish(
    conn: asyncpg.Connection | asyncpg.Pool,
    delivery_id: UUID,
    token: UUID,
    *,
    status: str,
    next_attempt_at: datetime | None,
    status_code: int | None,
    error: str | None,
    now: datetime,
    attempt: dict[str, Any],
) -> bool:
    """Record one attempt; False when the lease had moved on (nothing written)."""
    row = await conn.fetchrow(
        FINISH,
        delivery_id,
        token,
        status,
        next_attempt_at,
        status_code,
        error,
        now if status == "delivered" else None,
        now,
        json_text(attempt),
    )
    return row is not None


FOR_RUN = """
SELECT id, outcome, url, status, attempts, last_status_code, last_error, delivered_at,
       next_attempt_at, created_at, updated_at, history
FROM notifications WHERE run_id = $1 AND owner_id = $2
ORDER BY created_at, url
"""


async def for_run(
    conn: asyncpg.Connection | asyncpg.Pool, run_id: UUID, owner_id: UUID
) -> list[dict[str, Any]]:
    """The deliveries of one run, bound to its owner."""
    return [dict(r) for r in await conn.fetch(FOR_RUN, run_id, owner_id)]
