"""Tasks: the durable definition of a schedule plus a pipeline, owned by one agent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from ordinaut.errors import NotFound
from ordinaut.store import agents
from ordinaut.store.db import Connection, Where, keyset_page, like_literal, one_row
from ordinaut.store.rows import DueTask

TASK_COLUMNS = (
    "id, created_by, title, description, schedule_kind, schedule_expr, timezone, dtstart, "
    "payload, status, priority, max_retries, backoff_strategy, dedupe_key, "
    "dedupe_window_seconds, concurrency_key, misfire_policy, overlap_policy, next_run_at, "
    "snoozed_until, created_at, updated_at, max_duration_s, run_bound_s, labels"
)
# Columns a create or an update writes, in this order ($2..$19 below).
WRITABLE = (
    "title",
    "description",
    "schedule_kind",
    "schedule_expr",
    "timezone",
    "dtstart",
    "payload",
    "status",
    "priority",
    "max_retries",
    "backoff_strategy",
    "dedupe_key",
    "dedupe_window_seconds",
    "concurrency_key",
    "misfire_policy",
    "overlap_policy",
    "next_run_at",
    "snoozed_until",
)

INSERT_TASK = f"""
INSERT INTO tasks (id, created_by, {", ".join(WRITABLE)}, created_at, updated_at,
                   max_duration_s, run_bound_s, labels)
VALUES ($1, $20, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $21, $21, $22, $23, $24)
RETURNING {TASK_COLUMNS}
"""  # noqa: S608 - column lists are module constants, values are bound

UPDATE_TASK = f"""
UPDATE tasks SET title = $2, description = $3, schedule_kind = $4, schedule_expr = $5,
    timezone = $6, dtstart = $7, payload = $8, status = $9, priority = $10, max_retries = $11,
    backoff_strategy = $12, dedupe_key = $13, dedupe_window_seconds = $14,
    concurrency_key = $15, misfire_policy = $16, overlap_policy = $17, next_run_at = $18,
    snoozed_until = $19, updated_at = $21, max_duration_s = $22, run_bound_s = $23,
    labels = $24,
    payload_version = payload_version + (payload IS DISTINCT FROM $8::jsonb)::int
WHERE id = $1 AND created_by = $20
RETURNING {TASK_COLUMNS}
"""  # noqa: S608

# A create in one statement (no BEGIN/COMMIT round trips): the owner's counter row is locked
# (agent_task_counts, migration 0016, kept by triggers), the task inserted only while the
# owner is under its limit ($25), and its audit row and lifecycle event are written beside it,
# all or nothing. No row back: the limit was reached. Parameter types come from the columns.
CREATE_TASK = f"""
WITH quota AS (
    SELECT owned FROM agent_task_counts WHERE agent_id = $20 FOR UPDATE
), ins AS (
    INSERT INTO tasks (id, created_by, {", ".join(WRITABLE)}, created_at, updated_at,
                       max_duration_s, run_bound_s, labels)
    SELECT $1, $20, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
           $19, $21, $21, $22, $23, $24
    WHERE coalesce((SELECT owned FROM quota), 0) < $25
    RETURNING {TASK_COLUMNS}
), audit AS (
    INSERT INTO audit_log (actor_id, action, subject_type, subject_id, details, request_id,
                           created_at)
    SELECT $20, $26, 'task', ins.id, '{{}}', $27, $21 FROM ins
), lifecycle AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT $28, $26, $20, ins.id,
           jsonb_build_object('task_id', ins.id, 'status', ins.status), $21
    FROM ins
)
SELECT * FROM ins
"""  # noqa: S608 - column lists are module constants, values are bound

# CREATE_TASK with the bearer token checked in the same statement (one round trip instead of
# two): the grant of the token whose digest is $1 at the instant $2 (agents.GRANT_CTE), and the
# task inserted for its agent only when the grant holds every scope in $27 (the route's and
# those of the pipeline's tools; $28 is the admin scope, which implies them all, as
# Principal.has says) and the agent is under its limit ($24). No row back: the token is not
# live. A row whose task columns are null: nothing was written (a scope is missing or the
# limit reached; the caller tells which from the grant). $3..$20 are the WRITABLE columns,
# $21..$23 max_duration_s, run_bound_s, labels, $25 the action, $26 the request id; the task's
# and the lifecycle event's ids are drawn by the server (gen_random_uuid(), as uuid4 would).
_GRANTED_VALUES = ", ".join(f"${n}" for n in range(3, 3 + len(WRITABLE)))
CREATE_TASK_GRANTED = f"""
WITH {agents.GRANT_CTE}, allowed AS (
    SELECT agent_id FROM grant_ WHERE {agents.grant_admits("$27", "$28")}
), quota AS (
    SELECT owned FROM agent_task_counts
    WHERE agent_id = (SELECT agent_id FROM allowed) FOR UPDATE
), ins AS (
    INSERT INTO tasks (id, created_by, {", ".join(WRITABLE)}, created_at, updated_at,
                       max_duration_s, run_bound_s, labels)
    SELECT gen_random_uuid(), allowed.agent_id, {_GRANTED_VALUES}, $2, $2, $21, $22, $23
    FROM allowed
    WHERE coalesce((SELECT owned FROM quota), 0) < $24
    RETURNING {TASK_COLUMNS}
), audit AS (
    INSERT INTO audit_log (actor_id, action, subject_type, subject_id, details, request_id,
                           created_at)
    SELECT ins.created_by, $25, 'task', ins.id, '{{}}', $26, $2 FROM ins
), lifecycle AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT gen_random_uuid(), $25, ins.created_by, ins.id,
           jsonb_build_object('task_id', ins.id, 'status', ins.status), $2
    FROM ins
)
SELECT {agents.GRANT_COLUMNS}, ins.* FROM grant_ LEFT JOIN ins ON true
"""  # noqa: S608 - column lists are module constants, values are bound

SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND created_by = $2"  # noqa: S608
SELECT_TASK_FOR_UPDATE = SELECT_TASK + " FOR UPDATE"
# The bearer token's grant ($1 digest, $2 instant) and its agent's task $3, in one round trip:
# no row when the token is not live; a row with a null task when the task is not the agent's.
SELECT_TASK_GRANTED = f"""
WITH {agents.GRANT_CTE}
SELECT {agents.GRANT_COLUMNS}, t.*
FROM grant_ LEFT JOIN LATERAL (
    SELECT {TASK_COLUMNS} FROM tasks WHERE id = $3 AND created_by = grant_.agent_id
) t ON true
"""  # noqa: S608
SELECT_TASK_ANY_OWNER = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"  # noqa: S608

# The page first, then each of its tasks' latest finished run and recent failures (index
# runs_task_sched): the per-task lookups cost one page, never every matching task. Failures
# are counted among a task's latest 1,000 runs of the window: an index range with a bound,
# whatever the planner believes about how runs spread over tasks (a plain count over the
# window was a sequential scan of runs per task when one task held most runs). The page reads
# index tasks_owner (created_by, created_at DESC, id) in order; after a keyset cursor it starts
# right after the cursor's (created_at, id), so a deep page costs what the first one does.
# Each filter adds its predicate only when given (see store/runs.py); the total is a separate
# count, run only when asked for.
LIST_TASKS = """
WITH page AS ({page})
SELECT page.*, last.status AS last_run_status, last.finished_at AS last_run_at,
       fails.n AS failures_24h
FROM page
LEFT JOIN LATERAL (
    SELECT r.status::text AS status, r.finished_at FROM runs r
    WHERE r.task_id = page.id AND r.status IN ('succeeded', 'failed', 'dead_letter')
    ORDER BY r.scheduled_for DESC LIMIT 1
) last ON true
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE recent.status IN ('failed', 'dead_letter')) AS n
    FROM (
        SELECT r.status FROM runs r
        WHERE r.task_id = page.id AND r.scheduled_for >= {since}
        ORDER BY r.scheduled_for DESC
        LIMIT 1000
    ) recent
) fails
ORDER BY page.created_at DESC, page.id
"""


# Every stored task counts, canceled ones too: a canceled task keeps its row (and its runs)
# until its owner deletes it, so leaving them out let the rows grow without bound. Read from
# the counter the triggers of migration 0016 keep, never by counting the rows.
OWNED = "SELECT coalesce((SELECT owned FROM agent_task_counts WHERE agent_id = $1), 0)"
DELETE_TASK = "DELETE FROM tasks WHERE id = $1 AND created_by = $2 RETURNING id"
FIND_DEDUPE = f"""
SELECT {TASK_COLUMNS} FROM tasks
WHERE created_by = $1 AND dedupe_key = $2 AND created_at >= $3
ORDER BY created_at DESC LIMIT 1
"""  # noqa: S608


def task_values(task: dict[str, Any]) -> list[Any]:
    return [task.get(col) for col in WRITABLE]


def _bounds(task: dict[str, Any]) -> tuple[Any, Any]:
    """max_duration_s and run_bound_s ($22, $23): set by ``taskdefs.prepare``."""
    return task.get("max_duration_s"), task.get("run_bound_s")


def _labels(task: dict[str, Any]) -> dict[str, str]:
    """labels ($24): the task's whole map (a row written before labels existed has none)."""
    return task.get("labels") or {}


async def insert_task(
    conn: Connection, *, task_id: UUID, owner_id: UUID, task: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Insert a validated task; returns the stored row."""
    row = await conn.fetchrow(
        INSERT_TASK, task_id, *task_values(task), owner_id, now, *_bounds(task), _labels(task)
    )
    return dict(one_row(row))


async def create_task(
    conn: Connection | asyncpg.Pool,
    *,
    task_id: UUID,
    owner_id: UUID,
    task: dict[str, Any],
    now: datetime,
    max_owned: int,
    action: str,
    request_id: str | None,
) -> dict[str, Any] | None:
    """Insert a validated task with its audit row and ``action`` lifecycle event, in one
    statement (atomic on its own, or part of the caller's transaction); None, and nothing
    written, when the owner already has ``max_owned`` tasks."""
    row = await conn.fetchrow(
        CREATE_TASK,
        task_id,
        *task_values(task),
        owner_id,
        now,
        *_bounds(task),
        _labels(task),
        max_owned,
        action,
        request_id,
        uuid4(),
    )
    return None if row is None else dict(row)


async def create_task_granted(
    db: Connection | asyncpg.Pool,
    *,
    digest: bytes,
    now: datetime,
    required: frozenset[str],
    admin: str,
    task: dict[str, Any],
    max_owned: int,
    action: str,
    request_id: str | None,
) -> tuple[agents.Grant | None, dict[str, Any] | None]:
    """``create_task`` for the agent of the access token whose digest is ``digest``, checked
    at ``now`` in the same statement (``CREATE_TASK_GRANTED``): the token's grant (None: not
    live) and the stored task (None, and nothing written: the grant lacks a scope of
    ``required`` and is not ``admin``, or the agent already owns ``max_owned`` tasks)."""
    row = await db.fetchrow(
        CREATE_TASK_GRANTED,
        digest,
        now,
        *task_values(task),
        *_bounds(task),
        _labels(task),
        max_owned,
        action,
        request_id,
        sorted(required),
        admin,
    )
    return agents.split_granted(row)


async def get_task(
    conn: Connection | asyncpg.Pool, task_id: UUID, owner_id: UUID, *, lock: bool = False
) -> dict[str, Any]:
    """The caller's task; another agent's task is NotFound exactly like a missing one."""
    row = await conn.fetchrow(SELECT_TASK_FOR_UPDATE if lock else SELECT_TASK, task_id, owner_id)
    if row is None:
        raise NotFound(f"task {task_id} not found", {"task_id": str(task_id)})
    return dict(row)


async def get_task_granted(
    db: Connection | asyncpg.Pool, digest: bytes, now: datetime, task_id: UUID
) -> tuple[agents.Grant | None, dict[str, Any] | None]:
    """The grant of the access token whose digest is ``digest`` at ``now`` and, when it is
    live, its agent's task ``task_id`` (None: no such task of that agent), in one statement."""
    return agents.split_granted(await db.fetchrow(SELECT_TASK_GRANTED, digest, now, task_id))


async def update_task(
    conn: Connection, *, owner_id: UUID, task: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Write every writable column of ``task`` (read it with ``lock=True`` first)."""
    row = await conn.fetchrow(
        UPDATE_TASK, task["id"], *task_values(task), owner_id, now, *_bounds(task), _labels(task)
    )
    if row is None:
        raise NotFound(f"task {task['id']} not found", {"task_id": str(task["id"])})
    return dict(row)


async def list_tasks(
    conn: Connection | asyncpg.Pool,
    owner_id: UUID | None,
    *,
    status: str | None,
    kind: str | None,
    limit: int,
    offset: int = 0,
    failures_since: datetime,
    search: str | None = None,
    labels: Sequence[tuple[str, str]] = (),
    after: tuple[datetime, UUID] | None = None,
    count: bool = True,
) -> tuple[list[dict[str, Any]], int | None, bool]:
    """One page of ``owner_id``'s tasks (None: every agent's), newest first: the rows, the
    total matching (None unless ``count``) and whether more follow; ``search`` keeps the tasks
    whose title contains it (case-insensitive, taken literally); ``labels`` keeps the tasks
    carrying every one of these (key, value) pairs. Each task carries its latest
    finished run's status and time and its failures since ``failures_since``. ``after`` (the
    created_at and id of the previous page's last task, a keyset cursor) starts the page right
    after that task instead of skipping ``offset`` rows."""
    where = Where()
    if owner_id is not None:
        where.add("created_by = {}", owner_id)
    if status is not None:
        where.add("status = {}::task_status", status)
    if kind is not None:
        where.add("schedule_kind = {}", kind)
    if search:
        where.add("title ILIKE {} ESCAPE '\\'", "%" + like_literal(search) + "%")
    wanted = dict(labels)
    if len(wanted) < len(set(labels)):
        return [], (0 if count else None), False  # two values for one key: none carries both
    if wanted:
        where.add("labels @> {}::jsonb", wanted)
    total = None
    if count:
        counting = f"SELECT count(*) FROM tasks WHERE {where.sql}"  # noqa: S608 - fragments
        total = int(await conn.fetchval(counting, *where.args))
    page = keyset_page(
        TASK_COLUMNS, "tasks", where, "created_at", limit=limit + 1, offset=offset, after=after
    )
    sql = LIST_TASKS.format(page=page, since=where.bind(failures_since))
    rows = await conn.fetch(sql, *where.args)
    return [dict(r) for r in rows[:limit]], total, len(rows) > limit


async def count_owned(conn: Connection | asyncpg.Pool, owner_id: UUID) -> int:
    """The tasks ``owner_id`` stores (its counter row: no scan of its tasks)."""
    return int(await conn.fetchval(OWNED, owner_id))


async def delete_task(conn: Connection, task_id: UUID, owner_id: UUID) -> None:
    """Delete the task; its runs and pending work go with it (ON DELETE CASCADE)."""
    if await conn.fetchval(DELETE_TASK, task_id, owner_id) is None:
        raise NotFound(f"task {task_id} not found", {"task_id": str(task_id)})


async def find_recent_duplicate(
    conn: Connection | asyncpg.Pool, owner_id: UUID, dedupe_key: str, since: datetime
) -> dict[str, Any] | None:
    row = await conn.fetchrow(FIND_DEDUPE, owner_id, dedupe_key, since)
    return dict(row) if row else None


# What may run on a schedule: active tasks of active agents with a next slot. The tick's read
# and the one-task read below share it (and the columns planning needs), so they cannot drift.
# A deactivated agent's tasks wait where they are, like paused ones; when it is active again,
# each task's misfire policy decides what happens to the slots it missed.
DUE_TASK_COLUMNS = """id, created_by, schedule_kind, schedule_expr, timezone, dtstart, next_run_at,
       priority, max_retries, misfire_policy, overlap_policy, concurrency_key, snoozed_until"""
RUNNABLE_TASK = """status = 'active' AND next_run_at IS NOT NULL
  AND EXISTS (SELECT 1 FROM agents a WHERE a.id = tasks.created_by AND a.is_active)"""

# The tick's read: runnable tasks whose next slot falls inside the lookahead (tasks_due index).
# SKIP LOCKED lets concurrent schedulers split the work instead of waiting.
LOCK_DUE_TASKS = f"""
SELECT {DUE_TASK_COLUMNS}
FROM tasks
WHERE {RUNNABLE_TASK} AND next_run_at <= $1
ORDER BY next_run_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""  # noqa: S608 - column list and predicate are module constants, values are bound


async def lock_due_tasks(conn: Connection, *, horizon: datetime, limit: int) -> list[DueTask]:
    """Lock (inside the caller's transaction) the active tasks due by ``horizon``."""
    return [DueTask.from_row(r) for r in await conn.fetch(LOCK_DUE_TASKS, horizon, limit)]


LOCK_TASK_IF_DUE = f"""
SELECT {DUE_TASK_COLUMNS}
FROM tasks
WHERE id = $1 AND {RUNNABLE_TASK} AND next_run_at <= $2
FOR UPDATE SKIP LOCKED
"""  # noqa: S608 - column list and predicate are module constants, values are bound


async def lock_task_if_due(conn: Connection, task_id: UUID, *, now: datetime) -> list[DueTask]:
    """Lock one runnable task due by ``now`` (inside the caller's transaction); [] when it is
    not due, its agent is deactivated, or a tick holds it."""
    return [DueTask.from_row(r) for r in await conn.fetch(LOCK_TASK_IF_DUE, task_id, now)]


ADVANCE_TASKS = """
UPDATE tasks t SET next_run_at = a.next_run_at, status = a.status::task_status, updated_at = $4
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS a(id, next_run_at, status)
WHERE t.id = a.id
"""


async def advance_tasks(
    conn: Connection,
    ids: list[UUID],
    next_run_ats: list[datetime | None],
    statuses: list[str],
    *,
    now: datetime,
) -> None:
    """Move each task's cursor past what the tick materialized (one statement)."""
    if ids:
        await conn.execute(ADVANCE_TASKS, ids, next_run_ats, statuses, now)


# Tasks written before run bounds existed (migration 0010), in id order from ``after``.
UNBOUNDED = """
SELECT id, payload FROM tasks WHERE run_bound_s IS NULL AND id > $1 ORDER BY id LIMIT $2
"""
SET_RUN_BOUNDS = """
UPDATE tasks t SET run_bound_s = b.bound
FROM unnest($1::uuid[], $2::float8[]) AS b(id, bound)
WHERE t.id = b.id AND t.run_bound_s IS NULL
"""


async def unbounded_tasks(conn: Connection, after: UUID, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` tasks without a run bound, ids after ``after`` (keyset order)."""
    return list(await conn.fetch(UNBOUNDED, after, limit))


async def set_run_bounds(conn: Connection, ids: list[UUID], bounds: list[float]) -> None:
    """Give each task in ``ids`` its bound, where it has none yet."""
    await conn.execute(SET_RUN_BOUNDS, ids, bounds)
