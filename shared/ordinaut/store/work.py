"""The hot path: materialize slots, lease with SKIP LOCKED, heartbeat, finish, rescue.

A slot is one ``runs`` row (unique per (task, slot)) plus, while it is queued or running, one
``due_work`` row. Every state change after a lease is fenced on (run_id, attempt, lease_token).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from ordinaut.slots import idempotency_key as slot_idempotency_key
from ordinaut.store.db import Connection, json_text, one_row
from ordinaut.store.rows import CountedAttempt, LeasedRun, SlotTask, TaskPayload

WAKE_CHANNEL = "ordinaut_work"


@dataclass(frozen=True)
class NewSlot:
    run_id: UUID
    task_id: UUID
    owner_id: UUID
    slot: str
    trigger: str
    event_id: str | None
    scheduled_for: datetime
    run_at: datetime
    priority: int
    max_attempts: int
    concurrency_key: str | None
    buffer_one: bool
    idempotency_key: str
    # the W3C traceparent of the request that created it, continued by the run's span
    trace_context: str | None = None

    @classmethod
    def for_task(
        cls,
        task: SlotTask,
        *,
        slot: str,
        trigger: str,
        scheduled_for: datetime,
        run_at: datetime | None = None,
        owner_id: UUID | None = None,
        event_id: str | None = None,
        run_id: UUID | None = None,
        trace_context: str | None = None,
    ) -> NewSlot:
        """The slot ``slot`` of ``task``: priority, attempts (its retries + 1), concurrency key
        and buffering come from the task, the idempotency key from (task, slot). It runs at
        ``scheduled_for`` unless ``run_at`` says otherwise; its owner is the task's creator
        unless ``owner_id`` says otherwise (the same agent, read where the caller has it)."""
        return cls(
            run_id=run_id or uuid4(),
            task_id=task.id,
            owner_id=task.created_by if owner_id is None else owner_id,
            slot=slot,
            trigger=trigger,
            event_id=event_id,
            scheduled_for=scheduled_for,
            run_at=scheduled_for if run_at is None else run_at,
            priority=task.priority,
            max_attempts=task.max_retries + 1,
            concurrency_key=task.concurrency_key,
            buffer_one=task.overlap_policy == "buffer_one",
            idempotency_key=slot_idempotency_key(task.id, slot),
            trace_context=trace_context,
        )


# Runs first (the unique key decides which slots are new), then due_work for those only.
MATERIALIZE = """
WITH s AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                         $7::timestamptz[], $8::timestamptz[], $9::int[], $10::int[], $11::text[],
                         $12::bool[], $13::text[], $15::text[])
        AS s(run_id, task_id, owner_id, slot, trigger, event_id, scheduled_for, run_at, priority,
             max_attempts, concurrency_key, buffer_one, idempotency_key, trace_context)
), r AS (
    INSERT INTO runs (id, task_id, owner_id, slot, trigger, event_id, scheduled_for, status,
                      attempt, idempotency_key, created_at, updated_at, trace_context)
    SELECT run_id, task_id, owner_id, slot, trigger, event_id, scheduled_for, 'queued', 1,
           idempotency_key, $14, $14, trace_context
    FROM s
    ON CONFLICT (task_id, slot) DO NOTHING
    RETURNING id, task_id, owner_id, trigger, scheduled_for
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT gen_random_uuid(), 'run.queued', r.owner_id, r.id,
           jsonb_build_object('run_id', r.id, 'task_id', r.task_id, 'trigger', r.trigger,
                              'scheduled_for', r.scheduled_for),
           $14
    FROM r
)
INSERT INTO due_work (run_id, task_id, owner_id, run_at, priority, max_attempts,
                      concurrency_key, buffer_one)
SELECT s.run_id, s.task_id, s.owner_id, s.run_at, s.priority, s.max_attempts,
       s.concurrency_key, s.buffer_one
FROM s JOIN r ON r.id = s.run_id
RETURNING run_id, task_id
"""


async def materialize(
    conn: Connection, slots: Sequence[NewSlot], *, now: datetime
) -> list[tuple[UUID, UUID]]:
    """Insert slots in one statement; a slot that exists already is skipped. Returns new ids."""
    if not slots:
        return []
    rows = await conn.fetch(
        MATERIALIZE,
        [s.run_id for s in slots],
        [s.task_id for s in slots],
        [s.owner_id for s in slots],
        [s.slot for s in slots],
        [s.trigger for s in slots],
        [s.event_id for s in slots],
        [s.scheduled_for for s in slots],
        [s.run_at for s in slots],
        [s.priority for s in slots],
        [s.max_attempts for s in slots],
        [s.concurrency_key for s in slots],
        [s.buffer_one for s in slots],
        [s.idempotency_key for s in slots],
        now,
        [s.trace_context for s in slots],
    )
    return [(r["run_id"], r["task_id"]) for r in rows]


# Fairness ($5 = max_running_per_agent, 0: off): an owner already running its share across
# the whole fleet is passed over, so the scan reaches other owners' due rows behind its
# backlog, and a batch hands an owner no more than the rest of its share. Running rows are
# counted per lease (they are at most the fleet's total concurrency, found through
# due_work_expired); with $5 = 0 the count is not run at all.
LEASE = """
WITH busy AS (
    SELECT owner_id, count(*) AS n FROM due_work
    WHERE state = 'running' AND $5::int > 0
    GROUP BY owner_id
), c AS (
    SELECT w.run_id, w.owner_id, w.run_at, w.priority FROM due_work w
    WHERE w.state = 'queued' AND w.run_at <= $1
      -- [budget]
      AND (NOT w.buffer_one OR NOT EXISTS (
            SELECT 1 FROM due_work x WHERE x.task_id = w.task_id AND x.state = 'running'))
      AND (w.concurrency_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM due_work y
            WHERE y.concurrency_key = w.concurrency_key AND y.state = 'running'))
      AND ($5::int <= 0 OR w.owner_id <> ALL (ARRAY(SELECT owner_id FROM busy WHERE n >= $5)))
    ORDER BY w.run_at, w.priority DESC
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), pick AS (
    SELECT c.run_id FROM (
        SELECT run_id, owner_id,
               row_number() OVER (PARTITION BY owner_id ORDER BY run_at, priority DESC) AS nth
        FROM c
    ) c LEFT JOIN busy b ON b.owner_id = c.owner_id
    WHERE $5::int <= 0 OR c.nth + coalesce(b.n, 0) <= $5
), l AS (
    UPDATE due_work d
    SET state = 'running', lease_token = gen_random_uuid(),
        leased_until = $1 + make_interval(secs => $3), leased_by = $4
    -- = ANY(ARRAY(...)) keeps this on the primary key; a join with c can plan as a scan
    -- of the whole queue.
    WHERE d.run_id = ANY (ARRAY(SELECT run_id FROM pick))
    RETURNING d.run_id, d.task_id, d.attempt, d.max_attempts, d.lease_token, d.run_at
), r AS (
    UPDATE runs SET status = 'running', started_at = $1, attempt = l.attempt, worker_id = $4,
        updated_at = $1
    FROM l WHERE runs.id = l.run_id
    RETURNING runs.id, runs.task_id, runs.owner_id, runs.scheduled_for, runs.trigger,
              runs.event_id, runs.idempotency_key, runs.attempt, runs.trace_context
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT gen_random_uuid(), 'run.started', r.owner_id, r.id,
           jsonb_build_object('run_id', r.id, 'task_id', r.task_id, 'attempt', r.attempt,
                              'worker_id', $4::text),
           $1
    FROM r
)
SELECT l.run_id, l.task_id, l.attempt, l.max_attempts, l.lease_token, l.run_at,
       r.owner_id, r.scheduled_for, r.trigger, r.event_id, r.idempotency_key, r.trace_context,
       t.title, t.payload_version AS task_version, t.overlap_policy, t.backoff_strategy,
       t.run_bound_s,
       -- only overlap "skip" of a scheduled slot asks (worker/outcomes.py); CASE keeps the rest
       -- from probing the task's index entries, dead ones included, once per leased row
       CASE WHEN t.overlap_policy = 'skip' AND r.trigger = 'schedule' THEN
           EXISTS (SELECT 1 FROM due_work s
                   WHERE s.task_id = l.task_id AND s.state = 'running' AND s.run_id <> l.run_id)
       ELSE false END AS sibling_running,
       e.event_id AS event_key, e.topic AS event_topic, e.payload AS event_payload,
       e.depth AS event_depth,
       -- the owner as it is now: a deactivated owner's run is not executed, and the scopes
       -- bound what its steps may do (worker/outcomes.py, worker/attempt.py)
       a.is_active AS owner_active, a.scopes AS owner_scopes
FROM l JOIN r ON r.id = l.run_id JOIN tasks t ON t.id = l.task_id
JOIN agents a ON a.id = r.owner_id
LEFT JOIN events e ON r.event_id IS NOT NULL AND e.tenant_id = r.owner_id
                  AND e.event_id = r.event_id
ORDER BY l.run_at
"""


# A worker with a deadline (Lambda's drain) leases only rows whose run bound fits the time it
# has left; a task without a bound counts as the deployment's maximum. Rows that do not fit
# stay queued, attempt untouched, for a worker with more time. The filter's two parameters
# come after LEASE's own, whatever their number.
_LEASE_PARAMS = max(int(n) for n in re.findall(r"\$(\d+)", LEASE))
BUDGET_FILTER = (
    (
        "AND coalesce((SELECT b.run_bound_s FROM tasks b WHERE b.id = w.task_id), $default)"
        " <= $within"
    )
    .replace("$default", f"${_LEASE_PARAMS + 2}")
    .replace("$within", f"${_LEASE_PARAMS + 1}")
)
LEASE_WITHIN = LEASE.replace("-- [budget]", BUDGET_FILTER)


async def lease(
    conn: Connection,
    *,
    now: datetime,
    limit: int,
    lease_s: float,
    worker_id: str,
    max_running_per_owner: int = 0,
    within_s: float | None = None,
    default_bound_s: float = 0.0,
) -> list[LeasedRun]:
    """Lease up to ``limit`` due rows (due time, then priority); marks their runs running.

    With ``max_running_per_owner`` no owner gets more running rows than that, fleet-wide.
    With ``within_s``, only rows whose run bound (``tasks.run_bound_s``, else
    ``default_bound_s``) is at most ``within_s``.
    """
    args = (now, limit, lease_s, worker_id, max_running_per_owner)
    if within_s is None:
        rows = await conn.fetch(LEASE, *args)
    else:
        rows = await conn.fetch(LEASE_WITHIN, *args, within_s, default_bound_s)
    return [LeasedRun.from_row(r) for r in rows]


# A leased row names its task's payload version; workers keep compiled pipelines per version
# and read the payload only for versions they have not seen (decoding it with every leased row
# cost more than the rest of the row).
TASK_PAYLOADS = "SELECT id, payload_version, payload FROM tasks WHERE id = ANY($1::uuid[])"


async def task_payloads(
    conn: Connection | asyncpg.Pool, task_ids: Sequence[UUID]
) -> list[TaskPayload]:
    """Current payload and version of each task that still exists."""
    return [TaskPayload.from_row(r) for r in await conn.fetch(TASK_PAYLOADS, list(task_ids))]


NEXT_DUE = "SELECT min(run_at) FROM due_work WHERE state = 'queued'"


async def next_due_at(conn: Connection | asyncpg.Pool) -> datetime | None:
    """Earliest queued run_at (may be in the past when blocked by overlap/concurrency)."""
    value: datetime | None = await conn.fetchval(NEXT_DUE)
    return value


NEXT_DUE_WITHIN = """
SELECT min(w.run_at) FROM due_work w
WHERE w.state = 'queued' AND w.run_at > $1
  AND w.run_at + make_interval(secs => coalesce(
        (SELECT b.run_bound_s FROM tasks b WHERE b.id = w.task_id), $3)) <= $2
"""


async def next_due_within(
    conn: Connection | asyncpg.Pool,
    *,
    after: datetime,
    deadline: datetime,
    default_bound_s: float,
) -> datetime | None:
    """Earliest queued run_at later than ``after`` among rows that, started when due, would
    end by ``deadline`` (run_at + run bound): what a draining worker may still wait for."""
    value: datetime | None = await conn.fetchval(NEXT_DUE_WITHIN, after, deadline, default_bound_s)
    return value


# Terminal outcomes (succeeded, failed, dead_letter, skipped, canceled) for a batch.
FINISH = """
WITH f AS (
    -- JSON arrives as text[]: a jsonb[] parameter would read a JSON list as an array dimension
    SELECT run_id, token, attempt, status, output::jsonb AS output, error::jsonb AS error,
           steps::jsonb AS steps, finished_at, duration_ms
    FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::run_status[], $5::text[], $6::text[],
                $7::text[], $8::timestamptz[], $9::int[])
        AS f(run_id, token, attempt, status, output, error, steps, finished_at, duration_ms)
), d AS (
    DELETE FROM due_work w USING f
    WHERE w.run_id = f.run_id AND w.lease_token = f.token AND w.attempt = f.attempt
    RETURNING w.run_id
), u AS (
    -- duration_ms is finished_at - started_at, so the three always agree (the worker's own
    -- stopwatch, f.duration_ms, only stands in for a run that never started)
    UPDATE runs r SET status = f.status, output = f.output, error = f.error,
        step_results = f.steps, finished_at = f.finished_at,
        duration_ms = CASE WHEN r.started_at IS NULL THEN f.duration_ms ELSE
            GREATEST(0, round(extract(epoch FROM f.finished_at - r.started_at) * 1000))::int
        END,
        updated_at = f.finished_at
    FROM f JOIN d ON d.run_id = f.run_id
    WHERE r.id = f.run_id
    RETURNING r.id, r.task_id, r.owner_id, r.status::text AS status, r.attempt, r.finished_at
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT gen_random_uuid(),
           CASE u.status WHEN 'dead_letter' THEN 'run.dead_lettered' ELSE 'run.' || u.status END,
           u.owner_id, u.id,
           jsonb_build_object('run_id', u.id, 'task_id', u.task_id, 'attempt', u.attempt,
                              'status', u.status),
           u.finished_at
    FROM u
)
SELECT id, task_id, owner_id, status, attempt FROM u
"""

# A failed attempt with retries left: back to queued at its backoff instant.
REQUEUE = """
WITH f AS (
    SELECT run_id, token, attempt, run_at, error::jsonb AS error, steps::jsonb AS steps, now
    FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::timestamptz[], $5::text[], $6::text[],
                $7::timestamptz[])
        AS f(run_id, token, attempt, run_at, error, steps, now)
), w AS (
    UPDATE due_work d SET state = 'queued', attempt = d.attempt + 1, run_at = f.run_at,
        lease_token = NULL, leased_until = NULL, leased_by = NULL
    FROM f
    WHERE d.run_id = f.run_id AND d.lease_token = f.token AND d.attempt = f.attempt
    RETURNING d.run_id, d.attempt
), u AS (
    UPDATE runs r SET status = 'queued', attempt = w.attempt, error = f.error,
        step_results = f.steps, updated_at = f.now
    FROM f JOIN w ON w.run_id = f.run_id
    WHERE r.id = f.run_id
    RETURNING r.id, r.task_id, r.owner_id, r.attempt, f.now, f.run_at
), a AS (
    -- the attempt that just failed, kept before the next one overwrites the run's record
    -- (runs r is read as it was before this statement: the attempt's start and worker)
    INSERT INTO run_attempts (run_id, attempt, owner_id, status, started_at, finished_at, error,
                              step_results, worker_id)
    SELECT r.id, f.attempt, r.owner_id, 'failed', r.started_at, f.now, f.error, f.steps,
           r.worker_id
    FROM f JOIN w ON w.run_id = f.run_id JOIN runs r ON r.id = f.run_id
    ON CONFLICT (run_id, attempt) DO NOTHING
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT gen_random_uuid(), 'run.retried', u.owner_id, u.id,
           jsonb_build_object('run_id', u.id, 'task_id', u.task_id, 'attempt', u.attempt,
                              'run_at', u.run_at),
           u.now
    FROM u
)
SELECT id, task_id, owner_id, attempt FROM u
"""


@dataclass
class Outcome:
    """What a worker learned from one leased attempt."""

    run_id: UUID
    token: UUID
    attempt: int
    status: str  # succeeded | failed | dead_letter | skipped | canceled | retry
    finished_at: datetime
    duration_ms: int = 0
    output: Any = None
    error: Any = None
    steps: list[dict[str, Any]] | None = None
    retry_at: datetime | None = None


# A batch with a run that ended without success also files it under dead_letters ("needs
# attention", migrations/0018) in the same statement; a batch without one (the hot path) runs
# FINISH as it is, so successes pay nothing for it.
FINISH_WITH_DEAD_LETTERS = FINISH.replace(
    "\n), o AS (",
    """
), dl AS (
    INSERT INTO dead_letters (run_id, owner_id, task_id, finished_at)
    SELECT u.id, u.owner_id, u.task_id, u.finished_at FROM u
    WHERE u.status IN ('failed', 'dead_letter')
    ON CONFLICT (run_id) DO NOTHING
), o AS (""",
    1,
)
DEAD_STATUSES = frozenset({"failed", "dead_letter"})


async def finish(conn: Connection, outcomes: Sequence[Outcome]) -> list[asyncpg.Record]:
    """Record terminal outcomes, fenced; rows whose lease moved on are not returned."""
    if not outcomes:
        return []
    dead = any(o.status in DEAD_STATUSES for o in outcomes)
    return await conn.fetch(
        FINISH_WITH_DEAD_LETTERS if dead else FINISH,
        [o.run_id for o in outcomes],
        [o.token for o in outcomes],
        [o.attempt for o in outcomes],
        [o.status for o in outcomes],
        [json_text(o.output) for o in outcomes],
        [json_text(o.error) for o in outcomes],
        [json_text(o.steps or []) for o in outcomes],
        [o.finished_at for o in outcomes],
        [o.duration_ms for o in outcomes],
    )


async def requeue(conn: Connection, outcomes: Sequence[Outcome]) -> list[asyncpg.Record]:
    """Re-queue failed attempts at their retry instants, fenced."""
    if not outcomes:
        return []
    return await conn.fetch(
        REQUEUE,
        [o.run_id for o in outcomes],
        [o.token for o in outcomes],
        [o.attempt for o in outcomes],
        [o.retry_at for o in outcomes],
        [json_text(o.error) for o in outcomes],
        [json_text(o.steps or []) for o in outcomes],
        [o.finished_at for o in outcomes],
    )


EXTEND = """
UPDATE due_work d SET leased_until = $3::timestamptz + make_interval(secs => $4::float8)
FROM unnest($1::uuid[], $2::uuid[]) AS h(run_id, token)
WHERE d.run_id = h.run_id AND d.lease_token = h.token AND d.state = 'running'
RETURNING d.run_id
"""


async def extend_leases(
    conn: Connection | asyncpg.Pool,
    leases: Sequence[tuple[UUID, UUID]],
    *,
    now: datetime,
    lease_s: float,
) -> set[UUID]:
    """Heartbeat: extend the leases still held; returns the run ids still ours."""
    if not leases:
        return set()
    rows = await conn.fetch(EXTEND, [r for r, _ in leases], [t for _, t in leases], now, lease_s)
    return {r["run_id"] for r in rows}


# Count the attempt of each row in a CTE named ``counted`` (run_id, attempt, max_attempts):
# attempt + 1 and queued at {now} while attempts are left, else dead-lettered; the runs and the
# outbox follow in the same statement. Lease expiry (RESCUE) and a drain's deadline (CUT) both
# end attempts this way and differ only in which rows and why.
def _count_attempts(
    counted: str, *, now: str, reason: str, requeued_message: str, dead_message: str
) -> str:
    return f"""
WITH {counted}, requeued AS (
    UPDATE due_work d SET state = 'queued', attempt = d.attempt + 1, run_at = {now},
        lease_token = NULL, leased_until = NULL, leased_by = NULL
    FROM counted c
    WHERE d.run_id = c.run_id AND c.attempt < c.max_attempts
    RETURNING d.run_id, d.attempt
), dead AS (
    DELETE FROM due_work d USING counted c
    WHERE d.run_id = c.run_id AND c.attempt >= c.max_attempts
    RETURNING d.run_id
), r1 AS (
    UPDATE runs SET status = 'queued', attempt = q.attempt, updated_at = {now},
        error = jsonb_build_object('code', '{reason}', 'message', {requeued_message})
    FROM requeued q WHERE runs.id = q.run_id
    RETURNING runs.id, runs.task_id, runs.owner_id, 'requeued'::text AS action
), r2 AS (
    -- the cut attempt recorded no steps; those in the row are an earlier attempt's
    UPDATE runs SET status = 'dead_letter', finished_at = {now}, updated_at = {now},
        step_results = '[]',
        error = jsonb_build_object('code', '{reason}', 'message', {dead_message})
    FROM dead x WHERE runs.id = x.run_id
    RETURNING runs.id, runs.task_id, runs.owner_id, 'dead_letter'::text AS action
), a AS (
    -- the attempt cut off, kept (runs is read as it was before this statement); its steps
    -- were never recorded
    INSERT INTO run_attempts (run_id, attempt, owner_id, status, started_at, finished_at, error,
                              worker_id)
    SELECT r.id, c.attempt, r.owner_id, 'failed', r.started_at, {now},
           jsonb_build_object('code', '{reason}', 'message', {requeued_message}), r.worker_id
    FROM requeued q JOIN counted c ON c.run_id = q.run_id JOIN runs r ON r.id = q.run_id
    ON CONFLICT (run_id, attempt) DO NOTHING
), dl AS (
    INSERT INTO dead_letters (run_id, owner_id, task_id, finished_at)
    SELECT r2.id, r2.owner_id, r2.task_id, {now} FROM r2
    ON CONFLICT (run_id) DO NOTHING
), x AS (SELECT * FROM r1 UNION ALL SELECT * FROM r2
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT gen_random_uuid(),
           CASE x.action WHEN 'dead_letter' THEN 'run.dead_lettered' ELSE 'run.retried' END,
           x.owner_id, x.id,
           jsonb_build_object('run_id', x.id, 'task_id', x.task_id, 'reason', '{reason}'),
           {now}
    FROM x
)
SELECT * FROM x
"""  # noqa: S608 - composed once at import from this module's constants


RESCUE = _count_attempts(
    """counted AS (
    SELECT run_id, attempt, max_attempts FROM due_work
    WHERE state = 'running' AND leased_until < $1
    ORDER BY leased_until
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)""",
    now="$1",
    reason="lease_expired",
    requeued_message="'the worker running this attempt stopped heartbeating'",
    dead_message="'the worker running the last attempt stopped heartbeating'",
)


async def rescue_expired(
    conn: Connection, *, now: datetime, limit: int = 500
) -> list[CountedAttempt]:
    """Expired leases: attempt + 1 and queued now, or dead-lettered past max attempts."""
    return [CountedAttempt.from_row(r) for r in await conn.fetch(RESCUE, now, limit)]


# Pending, never-started scheduled slots of a task: dropped when its schedule changes,
# it is paused, or canceled; their runs rows go too, so the slot may be materialized again.
DROP_PENDING = """
WITH d AS (
    DELETE FROM due_work w USING runs r
    WHERE w.task_id = $1 AND w.state = 'queued' AND r.id = w.run_id
      AND r.started_at IS NULL AND r.trigger = ANY($2::text[])
    RETURNING w.run_id
)
DELETE FROM runs WHERE id IN (SELECT run_id FROM d) RETURNING id
"""


async def drop_pending(conn: Connection, task_id: UUID, *, triggers: Sequence[str]) -> int:
    """Remove queued slots that never started (by trigger); returns how many."""
    rows = await conn.fetch(DROP_PENDING, task_id, list(triggers))
    return len(rows)


CANCEL_QUEUED = """
WITH d AS (
    DELETE FROM due_work w WHERE w.task_id = $1 AND w.state = 'queued' RETURNING w.run_id
)
UPDATE runs SET status = 'canceled', finished_at = $2, updated_at = $2,
    error = jsonb_build_object('code', 'canceled', 'message', $3::text)
WHERE id IN (SELECT run_id FROM d)
RETURNING id
"""


async def cancel_queued(conn: Connection, task_id: UUID, *, now: datetime, reason: str) -> int:
    """Cancel every queued slot of a task (records stay, status canceled)."""
    return len(await conn.fetch(CANCEL_QUEUED, task_id, now, reason))


SNOOZE = """
UPDATE due_work SET run_at = greatest(run_at, $2) + make_interval(secs => $3)
WHERE task_id = $1 AND state = 'queued'
RETURNING run_id
"""


async def snooze_queued(conn: Connection, task_id: UUID, *, now: datetime, delay_s: float) -> int:
    return len(await conn.fetch(SNOOZE, task_id, now, delay_s))


# buffer_one: while a run was going, at most one more slot waits; when the waiting one is
# leased, any other slot of the task that became due meanwhile is recorded as skipped.
SKIP_BUFFERED = """
WITH d AS (
    DELETE FROM due_work w
    WHERE w.task_id = $1 AND w.state = 'queued' AND w.run_at <= $3 AND w.run_id <> $2
    RETURNING w.run_id
), r AS (
    UPDATE runs SET status = 'skipped', finished_at = $3, updated_at = $3,
        error = jsonb_build_object('code', 'overlap_skipped',
            'message', 'buffer_one keeps one waiting slot while a run is going')
    WHERE id IN (SELECT run_id FROM d)
    RETURNING id, task_id, owner_id
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT gen_random_uuid(), 'run.skipped', r.owner_id, r.id,
           jsonb_build_object('run_id', r.id, 'task_id', r.task_id, 'reason', 'buffer_one'), $3
    FROM r
)
SELECT count(*) FROM r
"""


async def skip_buffered(
    conn: Connection | asyncpg.Pool, task_id: UUID, keep_run_id: UUID, *, now: datetime
) -> int:
    """Skip every other due slot of a buffer_one task but the one just leased."""
    return int(await conn.fetchval(SKIP_BUFFERED, task_id, keep_run_id, now))


RELEASE = """
WITH f AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS f(run_id, token)
), w AS (
    UPDATE due_work d SET state = 'queued', run_at = $3, lease_token = NULL,
        leased_until = NULL, leased_by = NULL
    FROM f WHERE d.run_id = f.run_id AND d.lease_token = f.token
    RETURNING d.run_id
)
UPDATE runs SET status = 'queued', started_at = NULL, worker_id = NULL, updated_at = $3
WHERE id IN (SELECT run_id FROM w)
RETURNING id
"""


async def release(
    conn: Connection | asyncpg.Pool,
    leases: Sequence[tuple[UUID, UUID]],
    *,
    now: datetime,
) -> int:
    """Give leased rows back untouched (graceful shutdown): same attempt, due now."""
    if not leases:
        return 0
    rows = await conn.fetch(RELEASE, [r for r, _ in leases], [t for _, t in leases], now)
    return len(rows)


# A draining worker's deadline cut these runs off: the attempt counts (attempt + 1 and due now,
# for a worker with the time to finish it), or the run is dead-lettered after its last one, so
# a run that never fits cannot loop. Fenced on the lease.
CUT = _count_attempts(
    """f AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS f(run_id, token)
), counted AS (
    SELECT d.run_id, d.attempt, d.max_attempts FROM due_work d JOIN f
        ON d.run_id = f.run_id AND d.lease_token = f.token AND d.state = 'running'
    FOR UPDATE OF d
)""",
    now="$3",
    reason="worker_deadline",
    requeued_message="$4::text",
    dead_message="$4::text",
)
CUT_MESSAGE = "the worker's time ran out before this attempt finished; the attempt counts"


async def cut_at_deadline(
    conn: Connection | asyncpg.Pool,
    leases: Sequence[tuple[UUID, UUID]],
    *,
    now: datetime,
) -> list[CountedAttempt]:
    """Count the attempts of leased rows a deadline cut off: requeued (attempt + 1, due now)
    or dead-lettered."""
    if not leases:
        return []
    rows = await conn.fetch(CUT, [r for r, _ in leases], [t for _, t in leases], now, CUT_MESSAGE)
    return [CountedAttempt.from_row(r) for r in rows]


async def notify_work(conn: Connection | asyncpg.Pool) -> None:
    """One debounced wake-up for idle workers (call at most once per tick or request)."""
    await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)


QUEUE_STATS = """
SELECT count(*) FILTER (WHERE state = 'queued') AS queued,
       count(*) FILTER (WHERE state = 'queued' AND run_at <= $1) AS due,
       count(*) FILTER (WHERE state = 'running') AS running,
       min(run_at) FILTER (WHERE state = 'queued' AND run_at <= $1) AS oldest_due
FROM due_work
"""


async def queue_stats(conn: Connection | asyncpg.Pool, now: datetime) -> dict[str, Any]:
    """Queue depth (queued, of which due; running) and the age of the oldest due row."""
    row = one_row(await conn.fetchrow(QUEUE_STATS, now))
    oldest = row["oldest_due"]
    return {
        "queued": int(row["queued"]),
        "due": int(row["due"]),
        "running": int(row["running"]),
        "lag_s": max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
    }
