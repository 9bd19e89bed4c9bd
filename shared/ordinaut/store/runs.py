"""Runs, the read side and the operator actions: list, get, stats, retry, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.errors import InvalidTransition, NotFound
from ordinaut.store import agents
from ordinaut.store.db import Connection, Where, delete_in_batches, keyset_page, one_row

RUN_COLUMNS = (
    "id, task_id, owner_id, scheduled_for, status::text AS status, attempt, trigger, event_id, started_at, "
    "finished_at, duration_ms, output, error, created_at, updated_at"
)


# GET /runs reads one page in (scheduled_for DESC, id) order: index runs_owner_sched
# (owner_id, scheduled_for DESC, id), or runs_task_sched (task_id, scheduled_for DESC, id) for
# one task (migrations/0021). A task's page must not walk the owner's index filtered by task:
# below another task's newer runs it reads all of those first. The planner cannot see where
# the task's runs sit in that index (it chose it for one agent's table stored in its order), so
# with a task the owner is checked on the rows the task's index reads, written as a condition
# no index serves. Each filter adds its
# predicate only when given, so each combination is a prepared statement planned for exactly
# its predicates (an "$n IS NULL OR ..." predicate leaves a generic plan that cannot use the
# index). A page after a keyset cursor starts right after the cursor's (scheduled_for, id): an
# index range, so a deep page costs what the first one does; OFFSET stays for clients that
# number pages. The total is a separate count, run only when asked for and not known already.
def _run_filters(
    owner_id: UUID | None,
    task_id: UUID | None,
    status: str | None,
    success: bool | None,
    start: datetime | None,
    end: datetime | None,
    *,
    where: Where | None = None,
    owner_sql: str | None = None,
) -> Where:
    """The predicates of a listing, added to ``where`` (default: a new one); ``owner_sql``: the
    owner as an SQL expression of the statement instead of the bound ``owner_id``."""
    where = Where() if where is None else where
    if owner_sql is None and owner_id is not None:
        owner_sql = where.bind(owner_id)
    if owner_sql is not None and task_id is not None:
        where.add(f"(owner_id = {owner_sql}) IS TRUE")  # a filter: never runs_owner_sched
    elif owner_sql is not None:
        where.add(f"owner_id = {owner_sql}")
    if task_id is not None:
        where.add("task_id = {}", task_id)
    if status is not None:
        where.add("status = {}::run_status", status)
    if success is True:
        where.add("status = 'succeeded'")
    elif success is False:
        where.add("status IN ('failed', 'dead_letter')")
    if start is not None:
        where.add("scheduled_for >= {}", start)
    if end is not None:
        where.add("scheduled_for < {}", end)
    return where


RUN_OWNER = "SELECT owner_id FROM runs WHERE id = $1"
GET_RUN = f"SELECT {RUN_COLUMNS}, step_results, worker_id FROM runs WHERE id = $1 AND owner_id = $2"  # noqa: S608
GET_RUN_ANY_OWNER = f"SELECT {RUN_COLUMNS}, step_results, worker_id FROM runs WHERE id = $1"  # noqa: S608
LATEST_RUN = f"""
SELECT {RUN_COLUMNS}, step_results FROM runs
WHERE task_id = $1 AND owner_id = $2
ORDER BY scheduled_for DESC, created_at DESC LIMIT 1
"""  # noqa: S608
TASK_STATS = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'dead_letter') AS dead_letter,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       count(*) FILTER (WHERE status = 'canceled') AS canceled,
       avg(duration_ms) FILTER (WHERE duration_ms IS NOT NULL) AS avg_duration_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms,
       max(started_at) AS last_started_at,
       max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success_at,
       max(finished_at) FILTER (WHERE status IN ('failed', 'dead_letter')) AS last_failure_at
FROM runs WHERE task_id = $1 AND owner_id = $2
"""
SUMMARY = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'dead_letter') AS dead_letter,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       count(*) FILTER (WHERE status = 'canceled') AS canceled,
       count(*) FILTER (WHERE created_at >= $2) AS last_24h,
       count(*) FILTER (WHERE created_at >= $2 AND status = 'succeeded') AS succeeded_24h,
       count(*) FILTER (WHERE created_at >= $2 AND status IN ('failed', 'dead_letter'))
           AS failed_24h,
       avg(duration_ms) FILTER (WHERE duration_ms IS NOT NULL) AS avg_duration_ms
FROM runs WHERE owner_id = $1
"""
TASK_COUNTS = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE status = 'active') AS active,
       count(*) FILTER (WHERE status = 'paused') AS paused
FROM tasks WHERE created_by = $1
"""


def _row(r: asyncpg.Record) -> dict[str, Any]:
    d = dict(r)
    d.pop("total_count", None)
    for key in agents.GRANT_KEYS:
        d.pop(key, None)
    status = d["status"]
    d["success"] = (
        True if status == "succeeded" else False if status in ("failed", "dead_letter") else None
    )
    return d


async def list_runs(
    conn: Connection | asyncpg.Pool,
    owner_id: UUID | None,
    *,
    task_id: UUID | None,
    status: str | None,
    success: bool | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int = 0,
    after: tuple[datetime, UUID] | None = None,
    count: bool = True,
) -> tuple[list[dict[str, Any]], int | None, bool]:
    """One page of ``owner_id``'s runs (None: every agent's), newest slot first: the rows, the
    total matching (None unless ``count``) and whether more follow. ``after`` (the
    scheduled_for and id of the previous page's last run, a keyset cursor) starts the page
    right after that run instead of skipping ``offset`` rows."""
    where = _run_filters(owner_id, task_id, status, success, start, end)
    total = await _count(conn, where) if count else None
    listing = keyset_page(
        RUN_COLUMNS, "runs", where, "scheduled_for", limit=limit + 1, offset=offset, after=after
    )
    rows = await conn.fetch(listing, *where.args)
    return [_row(r) for r in rows[:limit]], total, len(rows) > limit


async def _count(conn: Connection | asyncpg.Pool, where: Where) -> int:
    counting = f"SELECT count(*) FROM runs WHERE {where.sql}"  # noqa: S608 - fragments
    return int(await conn.fetchval(counting, *where.args))


async def count_runs(
    conn: Connection | asyncpg.Pool,
    owner_id: UUID | None,
    *,
    task_id: UUID | None,
    status: str | None,
    success: bool | None,
    start: datetime | None,
    end: datetime | None,
) -> int:
    """How many runs ``list_runs`` would list over every page (it reads them all)."""
    return await _count(conn, _run_filters(owner_id, task_id, status, success, start, end))


# The caller's own page with its token check, in one statement (GET /runs without ``owner``):
# the grant of the token (agents.GRANT_CTE, $1 and $2) beside the page of that agent's runs,
# one row with no run when it has none, no row when the token is not live.
LIST_GRANTED = """
WITH {grant}
SELECT {grant_columns}, page.*
FROM grant_ LEFT JOIN LATERAL ({listing}) AS page ON true
ORDER BY page.scheduled_for DESC, page.id
"""


async def list_own_runs_granted(
    db: Connection | asyncpg.Pool,
    digest: bytes,
    now: datetime,
    *,
    task_id: UUID | None,
    status: str | None,
    success: bool | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int = 0,
    after: tuple[datetime, UUID] | None = None,
) -> tuple[agents.Grant | None, list[dict[str, Any]], bool]:
    """The grant of the access token whose digest is ``digest`` at ``now`` and, when it is
    live, a page of its agent's runs as ``list_runs`` reads it (uncounted): one round trip."""
    where = Where()
    where.bind(digest)  # $1 and $2, as agents.GRANT_CTE names them
    where.bind(now)
    _run_filters(
        None, task_id, status, success, start, end, where=where, owner_sql="grant_.agent_id"
    )
    listing = keyset_page(
        RUN_COLUMNS, "runs", where, "scheduled_for", limit=limit + 1, offset=offset, after=after
    )
    sql = LIST_GRANTED.format(
        grant=agents.GRANT_CTE, grant_columns=agents.GRANT_COLUMNS, listing=listing
    )
    rows = await db.fetch(sql, *where.args)
    if not rows:
        return None, [], False
    grant = agents.grant_from(rows[0])
    found = [r for r in rows if r["id"] is not None]
    return grant, [_row(r) for r in found[:limit]], len(found) > limit


async def owner_of(conn: Connection | asyncpg.Pool, run_id: UUID) -> UUID | None:
    """The agent owning a run (None: no such run); admins act on any agent's run."""
    owner: UUID | None = await conn.fetchval(RUN_OWNER, run_id)
    return owner


async def get_run(
    conn: Connection | asyncpg.Pool, run_id: UUID, owner_id: UUID | None
) -> dict[str, Any]:
    """One run with its step results; ``owner_id`` None reads any agent's (admins)."""
    if owner_id is None:
        row = await conn.fetchrow(GET_RUN_ANY_OWNER, run_id)
    else:
        row = await conn.fetchrow(GET_RUN, run_id, owner_id)
    if row is None:
        raise NotFound(f"run {run_id} not found", {"run_id": str(run_id)})
    return _row(row)


async def latest_run(
    conn: Connection | asyncpg.Pool, task_id: UUID, owner_id: UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(LATEST_RUN, task_id, owner_id)
    return _row(row) if row else None


# Each attempt that ended and was retried (migrations/0018), oldest first; the run's current
# or final attempt is the runs row itself.
RUN_ATTEMPTS = """
SELECT attempt, status::text AS status, started_at, finished_at, error, step_results, worker_id
FROM run_attempts WHERE run_id = $1 AND owner_id = $2
ORDER BY attempt
"""


def _current_attempt(run: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The run's current or final attempt, from its runs row.

    The row keeps a retried attempt's start, error and step results until the next attempt
    overwrites them, so they are this attempt's only once it started (a lease sets a new
    start): a queued retry has none yet, a running one only its start, and a retry canceled
    or skipped before it started shows no steps of the attempt before.
    """
    status = run["status"]
    started = run["started_at"]
    if status == "queued" or (previous is not None and started == previous["started_at"]):
        started = None
    current: dict[str, Any] = {
        "attempt": run["attempt"],
        "status": status,
        "current": True,
        "started_at": started,
        "finished_at": None,
        "duration_ms": None,
        "output": None,
        "error": None,
        "step_results": [],
        "worker_id": run.get("worker_id") if started is not None else None,
    }
    if status in ("queued", "running"):
        return current
    current.update(finished_at=run["finished_at"], error=run["error"], output=run["output"])
    if started is not None:
        current.update(duration_ms=run["duration_ms"], step_results=run["step_results"] or [])
    return current


async def run_attempts(
    conn: Connection | asyncpg.Pool, run_id: UUID, owner_id: UUID | None
) -> dict[str, Any]:
    """Every attempt of one run, oldest first (``owner_id`` None: any agent's, admins)."""
    run = await get_run(conn, run_id, owner_id)
    rows = await conn.fetch(RUN_ATTEMPTS, run_id, run["owner_id"])
    attempts: list[dict[str, Any]] = []
    for r in rows:
        if r["attempt"] >= run["attempt"]:
            continue  # recorded for a number the run has not moved past (cannot happen)
        a = dict(r)
        start, end = a["started_at"], a["finished_at"]
        a["duration_ms"] = (
            max(0, round((end - start).total_seconds() * 1000)) if start is not None else None
        )
        attempts.append({**a, "current": False, "output": None})
    previous = attempts[-1] if attempts and attempts[-1]["attempt"] == run["attempt"] - 1 else None
    attempts.append(_current_attempt(run, previous))
    return {
        "run_id": run["id"],
        "task_id": run["task_id"],
        "status": run["status"],
        "attempt": run["attempt"],
        "attempts": attempts,
    }


# Needs attention, over all history, from dead_letters (migrations/0018): the newest runs that
# ended without success and were not retried since, and the tasks whose latest finished run
# is one of them. A task can only be failing if it has such a run, so the candidates are the
# owner's dead-lettered tasks, each checked with one short walk of runs_task_sched.
ATTENTION_RUNS = """
SELECT r.id, r.task_id, t.title AS task_title, r.status::text AS status, r.attempt, r.trigger,
       r.scheduled_for, d.finished_at, r.error
FROM (
    SELECT run_id, finished_at FROM dead_letters WHERE owner_id = $1
    ORDER BY finished_at DESC, run_id LIMIT $2
) d
JOIN runs r ON r.id = d.run_id
JOIN tasks t ON t.id = r.task_id
ORDER BY d.finished_at DESC, d.run_id
"""
COUNT_DEAD_LETTERS = "SELECT count(*) FROM dead_letters WHERE owner_id = $1"
ATTENTION_TASKS = """
WITH candidates AS (
    SELECT DISTINCT task_id FROM dead_letters WHERE owner_id = $1
), failing AS (
    SELECT c.task_id, last.id AS run_id, last.status, last.scheduled_for, last.finished_at,
           last.error
    FROM candidates c
    CROSS JOIN LATERAL (
        SELECT r.id, r.status::text AS status, r.scheduled_for, r.finished_at, r.error
        FROM runs r
        WHERE r.task_id = c.task_id AND r.status IN ('succeeded', 'failed', 'dead_letter')
        ORDER BY r.scheduled_for DESC LIMIT 1
    ) last
    WHERE last.status <> 'succeeded'
)
SELECT f.task_id, t.title, t.status::text AS task_status, f.run_id, f.status, f.scheduled_for,
       f.finished_at, f.error, count(*) OVER () AS total_count
FROM failing f JOIN tasks t ON t.id = f.task_id AND t.created_by = $1
ORDER BY f.finished_at DESC, f.task_id
LIMIT $2
"""


async def attention(
    conn: Connection | asyncpg.Pool, owner_id: UUID, *, limit: int
) -> dict[str, Any]:
    """What needs a person: the owner's newest dead letters (and how many in all) and the
    tasks whose last finished run did not succeed (newest first, and how many)."""
    dead = [dict(r) for r in await conn.fetch(ATTENTION_RUNS, owner_id, limit)]
    total_dead = len(dead)
    if total_dead == limit:
        total_dead = int(await conn.fetchval(COUNT_DEAD_LETTERS, owner_id))
    failing = [dict(r) for r in await conn.fetch(ATTENTION_TASKS, owner_id, limit)]
    total_failing = int(failing[0]["total_count"]) if failing else 0
    for f in failing:
        f.pop("total_count")
    return {
        "dead_letters": dead,
        "dead_letters_total": total_dead,
        "failing_tasks": failing,
        "failing_tasks_total": total_failing,
        "limit": limit,
    }


def _numbers(row: asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in dict(row).items():
        out[k] = float(v) if k.endswith("_ms") and v is not None else v
    return out


async def task_stats(
    conn: Connection | asyncpg.Pool, task_id: UUID, owner_id: UUID
) -> dict[str, Any]:
    stats = _numbers(one_row(await conn.fetchrow(TASK_STATS, task_id, owner_id)))
    finished = stats["succeeded"] + stats["failed"] + stats["dead_letter"]
    stats["success_rate"] = (stats["succeeded"] / finished) if finished else None
    return stats


async def summary(
    conn: Connection | asyncpg.Pool, owner_id: UUID, *, since: datetime
) -> dict[str, Any]:
    runs = _numbers(one_row(await conn.fetchrow(SUMMARY, owner_id, since)))
    finished = runs["succeeded"] + runs["failed"] + runs["dead_letter"]
    runs["success_rate"] = (runs["succeeded"] / finished) if finished else None
    tasks = dict(one_row(await conn.fetchrow(TASK_COUNTS, owner_id)))
    return {"runs": runs, "tasks": tasks}


# Retry gives a failed or dead-lettered slot a fresh retry budget from the next attempt on.
RETRY_RUN = """
WITH r AS (
    UPDATE runs SET status = 'queued', attempt = runs.attempt + 1, finished_at = NULL,
        started_at = NULL, duration_ms = NULL, updated_at = $3
    FROM tasks t
    WHERE runs.id = $1 AND runs.owner_id = $2 AND t.id = runs.task_id
      AND runs.status IN ('failed', 'dead_letter')
    RETURNING runs.id, runs.task_id, runs.attempt, t.priority, t.max_retries, t.concurrency_key,
              t.overlap_policy, runs.owner_id
), a AS (
    -- the attempt that dead-lettered, kept (``old`` is the run as it was before this statement)
    INSERT INTO run_attempts (run_id, attempt, owner_id, status, started_at, finished_at, error,
                              step_results, worker_id)
    SELECT old.id, old.attempt, old.owner_id, old.status, old.started_at, old.finished_at,
           old.error, old.step_results, old.worker_id
    FROM r JOIN runs old ON old.id = r.id
    ON CONFLICT (run_id, attempt) DO NOTHING
), dl AS (
    DELETE FROM dead_letters WHERE run_id IN (SELECT id FROM r)
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT gen_random_uuid(), 'run.retried', r.owner_id, r.id,
           jsonb_build_object('run_id', r.id, 'task_id', r.task_id, 'attempt', r.attempt,
                              'reason', 'manual'), $3
    FROM r
)
INSERT INTO due_work (run_id, task_id, owner_id, run_at, priority, attempt, max_attempts,
                      concurrency_key, buffer_one)
SELECT id, task_id, owner_id, $3, priority, attempt, attempt + max_retries, concurrency_key,
       overlap_policy = 'buffer_one'
FROM r
RETURNING run_id
"""
RUN_STATUS = "SELECT status::text FROM runs WHERE id = $1 AND owner_id = $2"

CANCEL_RUN = """
WITH d AS (
    DELETE FROM due_work WHERE run_id = $1 RETURNING run_id
), r AS (
    -- a running attempt's steps are discarded with it; those left are an earlier attempt's
    UPDATE runs SET status = 'canceled', finished_at = $3, updated_at = $3, step_results = '[]',
        error = jsonb_build_object('code', 'canceled', 'message', 'canceled through the API')
    WHERE id = $1 AND owner_id = $2 AND status IN ('queued', 'running')
    RETURNING id, task_id, owner_id
), o AS (
    INSERT INTO outbox (event_id, event_type, tenant_id, subject_id, payload, created_at)
    SELECT gen_random_uuid(), 'run.canceled', r.owner_id, r.id,
           jsonb_build_object('run_id', r.id, 'task_id', r.task_id), $3
    FROM r
)
SELECT id FROM r
"""


async def _status_or_404(conn: Connection, run_id: UUID, owner_id: UUID) -> str:
    status: str | None = await conn.fetchval(RUN_STATUS, run_id, owner_id)
    if status is None:
        raise NotFound(f"run {run_id} not found", {"run_id": str(run_id)})
    return status


async def retry_run(conn: Connection, run_id: UUID, owner_id: UUID, now: datetime) -> None:
    """Requeue a failed or dead-lettered run now (409 from any other state)."""
    status = await _status_or_404(conn, run_id, owner_id)
    if await conn.fetchval(RETRY_RUN, run_id, owner_id, now) is None:
        raise InvalidTransition(
            f"only failed or dead-lettered runs can be retried; this run is {status}",
            {"status": status},
        )


async def cancel_run(conn: Connection, run_id: UUID, owner_id: UUID, now: datetime) -> None:
    """Cancel a queued or running run; a running attempt loses its lease and is discarded."""
    status = await _status_or_404(conn, run_id, owner_id)
    if status not in ("queued", "running"):
        raise InvalidTransition(
            f"only queued or running runs can be canceled; this run is {status}",
            {"status": status},
        )
    if await conn.fetchval(CANCEL_RUN, run_id, owner_id, now) is None:
        raise InvalidTransition("the run finished before it could be canceled", {})


# Finished runs (finished_at is set exactly for the finished states) created before the
# cutoff, a bounded batch at a time; the BRIN index on created_at finds them.
PRUNE_FINISHED = """
WITH old AS (
    SELECT id FROM runs WHERE created_at < $1 AND finished_at IS NOT NULL LIMIT $2
)
DELETE FROM runs r USING old WHERE r.id = old.id
"""


async def prune_finished(
    conn: Connection | asyncpg.Pool,
    *,
    before: datetime,
    batch: int = 5_000,
    max_batches: int = 20,
) -> int:
    """Delete finished runs created before ``before``; returns how many (bounded per call)."""
    return await delete_in_batches(
        conn, PRUNE_FINISHED, before, batch=batch, max_batches=max_batches
    )
