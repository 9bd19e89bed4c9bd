"""Events in: store an event once per (tenant, event id), find the tasks it triggers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut import auth
from ordinaut.store import agents
from ordinaut.store.db import Connection, glob_like, json_text, one_row
from ordinaut.store.outbox import OutboxEvent
from ordinaut.store.work import WAKE_CHANNEL

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
# a deactivated agent match nothing. A pattern without * matches only the topic equal to it:
# those are one index probe (tasks_event_patterns), and only the * patterns are tried one by
# one (tasks_event_wildcards), so the read stays flat however many topics an agent subscribes
# to. (A topic has no *, so the two parts never overlap.)
SUBSCRIBER = """id, created_by, priority, max_retries, concurrency_key, overlap_policy,
       payload -> 'filter' AS filter, payload -> 'params' AS params"""
MATCH_OWN = rf"""
SELECT t.* FROM (
    SELECT {SUBSCRIBER} FROM tasks
    WHERE created_by = $1 AND schedule_kind = 'event' AND status = 'active'
      AND schedule_expr = $2 AND schedule_expr NOT LIKE 'shared:%'
    UNION ALL
    SELECT {SUBSCRIBER} FROM tasks
    WHERE created_by = $1 AND schedule_kind = 'event' AND status = 'active'
      AND schedule_expr LIKE '%*%' AND schedule_expr NOT LIKE 'shared:%'
      AND $2 LIKE {glob_like("schedule_expr")}
) AS t
WHERE EXISTS (SELECT 1 FROM agents a WHERE a.id = t.created_by AND a.is_active)
ORDER BY t.id
"""  # noqa: S608 - constant SQL: db.glob_like of a column or parameter
# Every tenant's shared: subscriptions matching a shared topic, the same way: the exact ones by
# one probe (tasks_shared_subscriptions), only the * patterns tried (tasks_shared_wildcards).
MATCH_SHARED = rf"""
SELECT t.* FROM (
    SELECT {SUBSCRIBER} FROM tasks
    WHERE schedule_kind = 'event' AND status = 'active' AND schedule_expr LIKE 'shared:%'
      AND schedule_expr = 'shared:' || $1
    UNION ALL
    SELECT {SUBSCRIBER} FROM tasks
    WHERE schedule_kind = 'event' AND status = 'active' AND schedule_expr LIKE 'shared:%'
      AND schedule_expr LIKE '%*%' AND $1 LIKE {glob_like("substr(schedule_expr, 8)")}
) AS t
WHERE EXISTS (SELECT 1 FROM agents a WHERE a.id = t.created_by AND a.is_active)
ORDER BY t.created_by, t.id
"""  # noqa: S608 - constant SQL: db.glob_like of a column or parameter
IS_SHARED = rf"""
SELECT EXISTS (
    SELECT 1 FROM shared_topics
    WHERE $1 LIKE {glob_like("pattern")}
)
"""  # noqa: S608 - constant SQL: db.glob_like of a column or parameter


def _route_or_store(publisher: str, first: int, *, granted: bool = False) -> str:
    """The first statement of an ingest: whether the topic is shared, and the publisher's own
    tasks it triggers (one row with a null id when none). When neither (nothing listens: the
    usual event), the same statement also stores the event and its event.received outbox row,
    so such an event costs one round trip; otherwise it writes nothing and the caller goes on
    with what it read. A duplicate event id writes nothing either (seq null).

    ``publisher`` is the CTE ``pub(id)`` naming the publishing tenant (no row: nothing is
    read or written), ``first`` the number of the statement's first parameter after those
    ``publisher`` uses (event id, topic, payload, source, instant, then the event.received
    outbox row's id, type and payload). ``granted``: ``publisher`` follows agents.GRANT_CTE,
    whose grant is read back beside (agents.GRANT_COLUMNS)."""
    n = dict(
        zip(
            ("event_id", "topic", "payload", "source", "now", "rid", "rtype", "rpayload"),
            (f"${i}" for i in range(first, first + 8)),
            strict=True,
        )
    )
    tenant = "(SELECT id FROM pub)"
    grant = f", {agents.GRANT_COLUMNS}" if granted else ""
    grant_join = "LEFT JOIN grant_ ON true " if granted else ""
    shared = IS_SHARED.strip().replace("$1", n["topic"])
    own = MATCH_OWN.strip().replace("$2", n["topic"]).replace("$1", tenant)
    return f"""
WITH {publisher}, sh(shared) AS (
    {shared}
), own AS (
    {own}
), ev AS (
    INSERT INTO events (tenant_id, event_id, topic, payload, source, received_at, depth)
    SELECT pub.id, {n["event_id"]}, {n["topic"]}, {n["payload"]}, {n["source"]}, {n["now"]}, 0
    FROM pub
    WHERE NOT (SELECT shared FROM sh) AND NOT EXISTS (SELECT 1 FROM own)
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING seq, tenant_id
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT {n["rid"]}::uuid, {n["rtype"]}::text, ev.tenant_id, NULL, {n["rpayload"]}::jsonb,
           {n["now"]}
    FROM ev
)
SELECT sh.shared, {tenant} AS publisher, (SELECT seq FROM ev) AS seq{grant}, own.*
FROM sh {grant_join}LEFT JOIN own ON true
ORDER BY own.id
"""  # noqa: S608 - built from the constant statements above


# The publisher named by the caller ($1).
ROUTE_OR_STORE = _route_or_store("pub(id) AS (SELECT $1::uuid)", 2)
# The publisher a bearer token names (agents.GRANT_CTE: $1 digest, $2 instant), when the grant
# holds the scopes $3 or the admin scope $4 (agents.grant_admits); the grant is read back
# (agents.grant_from) for the caller to admit.
GRANTED_PUBLISHER = f"""{agents.GRANT_CTE}, pub(id) AS (
    SELECT agent_id FROM grant_ WHERE {agents.grant_admits("$3", "$4")}
)"""  # noqa: S608 - constant SQL
ROUTE_OR_STORE_GRANTED = _route_or_store(GRANTED_PUBLISHER, 5, granted=True)
# The writes of an ingest in one statement, so atomic without BEGIN/COMMIT round trips: the
# event (tasks_matched known already), and only when it is new: its runs (as work.MATERIALIZE:
# runs first, due_work for the new ones), their run.queued events and the lifecycle events in
# one outbox insert in that order, the publisher's run budget charged (quota.CHARGE), and when
# runs are new, the idle workers' wake-up (work.notify_work; a NOTIFY is sent at the commit).
INGEST = """
WITH ev AS (
    INSERT INTO events (tenant_id, event_id, topic, payload, source, received_at, depth,
                        tasks_matched)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING seq
), s AS (
    SELECT * FROM unnest($9::uuid[], $10::uuid[], $11::text[], $12::int[], $13::int[],
                         $14::text[], $15::bool[], $16::text[], $17::text[]) WITH ORDINALITY
        AS s(run_id, task_id, slot, priority, max_attempts, concurrency_key, buffer_one,
             idempotency_key, trace_context, n)
    WHERE EXISTS (SELECT 1 FROM ev)
), r AS (
    INSERT INTO runs (id, task_id, owner_id, slot, trigger, event_id, scheduled_for, status,
                      attempt, idempotency_key, created_at, updated_at, trace_context)
    SELECT run_id, task_id, $1, slot, 'event', $2, $6, 'queued', 1, idempotency_key, $6, $6,
           trace_context
    FROM s
    ON CONFLICT (task_id, slot) DO NOTHING
    RETURNING id, task_id, owner_id, trigger, scheduled_for
), d AS (
    INSERT INTO due_work (run_id, task_id, owner_id, run_at, priority, max_attempts,
                          concurrency_key, buffer_one)
    SELECT s.run_id, s.task_id, $1, $6, s.priority, s.max_attempts, s.concurrency_key,
           s.buffer_one
    FROM s JOIN r ON r.id = s.run_id
    RETURNING run_id
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT e.event_id, e.event_type, e.tenant_id, e.subject_id, e.payload, $6
    FROM (
        SELECT gen_random_uuid() AS event_id, 'run.queued' AS event_type, r.owner_id AS tenant_id,
               r.id AS subject_id,
               jsonb_build_object('run_id', r.id, 'task_id', r.task_id, 'trigger', r.trigger,
                                  'scheduled_for', r.scheduled_for) AS payload,
               0 AS part, s.n
        FROM r JOIN s ON s.run_id = r.id
        UNION ALL
        SELECT l.event_id, l.event_type, $1, NULL, l.payload::jsonb, 1, l.n
        FROM unnest($18::uuid[], $19::text[], $20::text[]) WITH ORDINALITY
            AS l(event_id, event_type, payload, n)
        WHERE EXISTS (SELECT 1 FROM ev)
        ORDER BY part, n
    ) AS e
), q AS (
    INSERT INTO run_quota AS q (agent_id, window_start, used)
    SELECT $1, $21, $22 WHERE $22 > 0 AND EXISTS (SELECT 1 FROM ev)
    ON CONFLICT (agent_id) DO UPDATE
    SET used = CASE WHEN q.window_start = EXCLUDED.window_start THEN q.used + EXCLUDED.used
                    ELSE EXCLUDED.used END,
        window_start = EXCLUDED.window_start
), w AS (
    SELECT pg_notify($23, '') FROM (SELECT 1 FROM d LIMIT 1) AS queued
)
SELECT (SELECT seq FROM ev) AS seq, (SELECT count(*) FROM d) AS created,
       (SELECT count(*) FROM w) AS woken
"""
# INGEST for an event that queues no run (no task matched, or the budget is spent): the same
# writes without the run parts, so PostgreSQL plans a statement a quarter the size.
INGEST_NO_RUNS = """
WITH ev AS (
    INSERT INTO events (tenant_id, event_id, topic, payload, source, received_at, depth,
                        tasks_matched)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING seq
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT l.event_id, l.event_type, $1, NULL, l.payload::jsonb, $6
    FROM unnest($9::uuid[], $10::text[], $11::text[]) WITH ORDINALITY
        AS l(event_id, event_type, payload, n)
    WHERE EXISTS (SELECT 1 FROM ev)
    ORDER BY l.n
)
SELECT (SELECT seq FROM ev) AS seq, 0::bigint AS created
"""


@dataclass(frozen=True)
class Routed:
    """What ``route_or_store`` found: the ``publisher`` (None: a token that may not publish,
    nothing read or written), ``shared`` topic, the publisher's ``own`` matching tasks,
    whether the event was ``stored`` (neither), and its ``seq`` (None: not stored, or a
    duplicate event id when ``stored``)."""

    publisher: UUID | None
    shared: bool
    own: list[asyncpg.Record]
    stored: bool
    seq: int | None


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


async def route_or_store(
    conn: Connection | asyncpg.Pool,
    *,
    tenant_id: UUID,
    event_id: str,
    topic: str,
    payload: Any,
    source: str,
    now: datetime,
    received: OutboxEvent,
) -> Routed:
    """Whether ``topic`` is shared and the tenant's own active event tasks it matches (as
    ``matching_tasks``); when neither, the event is stored too, with ``received`` (the
    ``outbox.OutboxEvent`` saying it arrived and triggered nothing), in the same statement."""
    rows = await conn.fetch(
        ROUTE_OR_STORE, tenant_id, *_event_args(event_id, topic, payload, source, now, received)
    )
    return _routed(rows)


async def route_or_store_granted(
    conn: Connection | asyncpg.Pool,
    *,
    digest: bytes,
    at: datetime,
    scope: str,
    event_id: str,
    topic: str,
    payload: Any,
    source: str,
    now: datetime,
    received: OutboxEvent,
) -> tuple[agents.Grant | None, Routed]:
    """``route_or_store`` for the agent of the access token whose digest is ``digest`` (live
    at ``at``), in the same statement as the token check: the grant (None: not a live token)
    and what was routed. Nothing is read or written for a token that is not live or lacks
    ``scope`` (``admin`` implies every scope, as the API's ``Principal.has``): the routed
    ``publisher`` is None then, and the caller refuses the request from the grant."""
    rows = await conn.fetch(
        ROUTE_OR_STORE_GRANTED,
        digest,
        at,
        [scope],
        auth.ADMIN,
        *_event_args(event_id, topic, payload, source, now, received),
    )
    return agents.grant_from(rows[0]), _routed(rows)


def _event_args(
    event_id: str, topic: str, payload: Any, source: str, now: datetime, received: OutboxEvent
) -> tuple[Any, ...]:
    return (
        event_id,
        topic,
        payload,
        source,
        now,
        received.event_id,
        received.event_type,
        received.payload,
    )


def _routed(rows: list[asyncpg.Record]) -> Routed:
    first = rows[0]
    shared, publisher = bool(first["shared"]), first["publisher"]
    own = [r for r in rows if r["id"] is not None]
    stored = publisher is not None and not shared and not own
    return Routed(publisher, shared, own, stored=stored, seq=first["seq"])


async def ingest(
    conn: Connection | asyncpg.Pool,
    *,
    tenant_id: UUID,
    event_id: str,
    topic: str,
    payload: Any,
    source: str,
    now: datetime,
    depth: int,
    tasks_matched: int,
    slots: Sequence[Any],
    lifecycle: Sequence[Any],
    quota_window: datetime,
    quota_charge: int,
) -> tuple[int | None, int]:
    """Store an event and, only if it is new, its runs (``work.NewSlot``s of the tenant, for
    the event, at ``now``), the run.queued and ``lifecycle`` (``outbox.OutboxEvent``) events and
    ``quota_charge`` runs against the tenant's budget of ``quota_window``, in one statement,
    which also wakes idle workers when runs are new (no ``work.notify_work`` after it).
    Returns the event's seq (None: a duplicate, nothing written) and how many runs are new."""
    head = (tenant_id, event_id, topic, payload, source, now, depth, tasks_matched)
    lifecycle_args = (
        [e.event_id for e in lifecycle],
        [e.event_type for e in lifecycle],
        [json_text(e.payload) for e in lifecycle],
    )
    if not slots and not quota_charge:
        row = one_row(await conn.fetchrow(INGEST_NO_RUNS, *head, *lifecycle_args))
        return row["seq"], 0
    row = one_row(
        await conn.fetchrow(
            INGEST,
            *head,
            [s.run_id for s in slots],
            [s.task_id for s in slots],
            [s.slot for s in slots],
            [s.priority for s in slots],
            [s.max_attempts for s in slots],
            [s.concurrency_key for s in slots],
            [s.buffer_one for s in slots],
            [s.idempotency_key for s in slots],
            [s.trace_context for s in slots],
            *lifecycle_args,
            quota_window,
            quota_charge,
            WAKE_CHANNEL,
        )
    )
    return row["seq"], int(row["created"])


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
