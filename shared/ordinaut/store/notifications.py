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

from ordinaut.store.db import Connection, glob_like, json_text, one_row

ROUTE_LOCK_ID = 0x4F52_4E54  # one router at a time, so the cursor moves in order
CURSOR_NAME = "outcomes"
TRY_ROUTE_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
CURSOR = "SELECT last_tx, last_seq FROM relay_cursor WHERE name = 'outcomes'"
ADVANCE = "UPDATE relay_cursor SET last_tx = $1, last_seq = $2 WHERE name = 'outcomes'"
ADVANCE_TO = """
UPDATE relay_cursor SET last_tx = $1, last_seq = $2
WHERE name = 'outcomes' AND (last_tx, last_seq) < ($1::xid8, $2::bigint)
RETURNING 1
"""
# The next settled outbox rows after the cursor ($3 at most, the window); of those, the run
# outcomes ($4 event types, $5 their topics, $6 their outcomes) that cause anything: the task
# has a notify target wanting the outcome, or an active event task of the owner's own listens
# to the topic. Tasks and subscriptions are probed once per distinct task and (owner, topic) of
# the window, and only the outcomes that cause something read their run, so the common case
# (nobody listens) costs one index range of the outbox per window. A window without outcomes
# still returns its end, where the cursor moves.
OUTCOMES_AFTER = rf"""
WITH w AS (
    SELECT tx, seq, event_id, event_type, tenant_id, subject_id, payload, created_at
    FROM outbox
    WHERE (tx, seq) > ($1::xid8, $2::bigint) AND tx < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx, seq
    LIMIT $3
), last AS (
    SELECT tx, seq FROM w ORDER BY tx DESC, seq DESC LIMIT 1
), m AS (
    SELECT * FROM unnest($4::text[], $5::text[], $6::text[]) AS m(event_type, topic, outcome)
), x AS (
    SELECT w.seq, w.event_id, w.event_type, m.topic, m.outcome, w.tenant_id AS owner_id,
           w.subject_id AS run_id, w.payload, w.created_at AS recorded_at,
           (w.payload ->> 'task_id')::uuid AS task_id
    FROM w JOIN m ON m.event_type = w.event_type
    WHERE w.tenant_id IS NOT NULL AND w.subject_id IS NOT NULL AND w.payload ? 'task_id'
), notifying AS (
    SELECT t.id, t.payload -> 'notify' AS notify FROM tasks t
    WHERE t.id IN (SELECT task_id FROM x) AND t.payload ? 'notify'
), pairs AS (
    SELECT DISTINCT owner_id, topic FROM x
), listened AS (
    SELECT p.owner_id, p.topic FROM pairs p
    WHERE EXISTS (
        SELECT 1 FROM tasks
        WHERE created_by = p.owner_id AND schedule_kind = 'event' AND status = 'active'
          AND schedule_expr NOT LIKE 'shared:%'
          AND p.topic LIKE {glob_like("schedule_expr")}
    )
), y AS (
    SELECT x.*, n.notify, l.owner_id IS NOT NULL AS subscribed
    FROM x
    LEFT JOIN notifying n ON n.id = x.task_id
        AND jsonb_path_exists(n.notify, '$[*].on[*] ? (@ == $o)',
                              jsonb_build_object('o', x.outcome))
    LEFT JOIN listened l ON l.owner_id = x.owner_id AND l.topic = x.topic
    WHERE n.id IS NOT NULL OR l.owner_id IS NOT NULL
)
SELECT last.tx AS last_tx, last.seq AS last_seq, z.*
FROM last LEFT JOIN LATERAL (
    SELECT y.*, r.attempt AS run_attempt, r.error, t.title, coalesce(e.depth, 0) AS cause_depth
    FROM y
    JOIN runs r ON r.id = y.run_id AND r.owner_id = y.owner_id
    JOIN tasks t ON t.id = r.task_id
    JOIN agents a ON a.id = y.owner_id AND a.is_active  -- a deactivated owner is told nothing
    LEFT JOIN events e ON r.event_id IS NOT NULL AND e.tenant_id = r.owner_id
                      AND e.event_id = r.event_id
) z ON true
ORDER BY z.seq
"""  # noqa: S608 - constant SQL: db.glob_like of a column or parameter
# Whether any task could want an outcome routed (the partial indexes of migration 0015; the
# listener predicate repeats that index's), and the newest settled outbox row: read in one
# snapshot, so a task that starts listening either is seen here or came after every row skipped.
ANYONE_LISTENING = """
SELECT EXISTS (SELECT 1 FROM tasks WHERE payload ? 'notify')
    OR EXISTS (
        SELECT 1 FROM tasks
        WHERE schedule_kind = 'event' AND status = 'active'
          AND (schedule_expr LIKE 'run.%' OR schedule_expr LIKE '*%' OR schedule_expr LIKE 'r*%'
               OR schedule_expr LIKE 'ru*%' OR schedule_expr LIKE 'run*%')
    ) AS listening,
    s.tx AS last_tx, s.seq AS last_seq
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT tx, seq FROM outbox WHERE tx < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx DESC, seq DESC LIMIT 1
) s ON true
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


async def try_route_lock(conn: Connection) -> bool:
    """Inside a transaction: True when this router may route now."""
    return bool(await conn.fetchval(TRY_ROUTE_LOCK, ROUTE_LOCK_ID))


async def outcomes_after_cursor(
    conn: Connection, limit: int, kinds: Sequence[tuple[str, str, str]]
) -> tuple[tuple[Any, int] | None, list[asyncpg.Record]]:
    """The window's end ``(last_tx, last_seq)`` (None: nothing new) and its run outcomes that
    cause something; ``kinds`` is (outbox event type, lifecycle topic, outcome) per kind."""
    cursor = one_row(await conn.fetchrow(CURSOR))
    rows = await conn.fetch(
        OUTCOMES_AFTER,
        cursor["last_tx"],
        cursor["last_seq"],
        limit,
        [k[0] for k in kinds],
        [k[1] for k in kinds],
        [k[2] for k in kinds],
    )
    if not rows:
        return None, []
    end = (rows[0]["last_tx"], int(rows[0]["last_seq"]))
    return end, [r for r in rows if r["seq"] is not None]


async def nobody_listening(conn: Connection) -> tuple[Any, int] | None:
    """The newest settled outbox row ``(tx, seq)`` when no task could want any outcome routed
    (the cursor may jump there), else None (route window by window)."""
    row = one_row(await conn.fetchrow(ANYONE_LISTENING))
    if row["listening"] or row["last_tx"] is None:
        return None
    return row["last_tx"], int(row["last_seq"])


async def advance(conn: Connection, last_tx: Any, last_seq: int) -> None:
    await conn.execute(ADVANCE, last_tx, last_seq)


async def advance_to(conn: Connection, last_tx: Any, last_seq: int) -> bool:
    """Move the cursor forward to ``(last_tx, last_seq)``; False when it was there already."""
    return await conn.fetchval(ADVANCE_TO, last_tx, last_seq) is not None


async def insert_deliveries(
    conn: Connection, deliveries: Sequence[NewDelivery], *, now: datetime
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


# Due deliveries that will not be sent: the last attempt was leased and never finished (the
# deliverer died), or the owner was deactivated (docs/isolation.md, "Deactivation").
EXHAUSTED = """
UPDATE notifications n SET status = 'failed', next_attempt_at = NULL, lease_token = NULL,
    updated_at = $1,
    last_error = CASE WHEN a.is_active
                      THEN 'the deliverer stopped during the last attempt; given up'
                      ELSE 'owner_inactive: the agent was deactivated; not sent' END
FROM agents a
WHERE a.id = n.owner_id AND n.status = 'pending' AND n.next_attempt_at <= $1
  AND (n.attempts >= $2 OR NOT a.is_active)
RETURNING n.id
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
    conn: Connection | asyncpg.Pool, *, now: datetime, max_attempts: int
) -> int:
    return len(await conn.fetch(EXHAUSTED, now, max_attempts))


async def lease(
    conn: Connection | asyncpg.Pool,
    *,
    now: datetime,
    limit: int,
    lease_s: float,
    max_attempts: int,
) -> list[asyncpg.Record]:
    """Lease up to ``limit`` due deliveries (attempt + 1 each)."""
    return await conn.fetch(LEASE, now, limit, lease_s, max_attempts)


async def finish(
    conn: Connection | asyncpg.Pool,
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
    conn: Connection | asyncpg.Pool, run_id: UUID, owner_id: UUID
) -> list[dict[str, Any]]:
    """The deliveries of one run, bound to its owner."""
    return [dict(r) for r in await conn.fetch(FOR_RUN, run_id, owner_id)]
