"""Liveness rows: worker heartbeats and scheduler tick freshness."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from ordinaut.store.db import Connection, one_row

UPSERT_WORKER = """
INSERT INTO worker_heartbeats (worker_id, hostname, pid, started_at, last_seen, in_flight)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (worker_id) DO UPDATE SET last_seen = excluded.last_seen,
    in_flight = excluded.in_flight
"""
DELETE_WORKER = "DELETE FROM worker_heartbeats WHERE worker_id = $1"
PRUNE_WORKERS = "DELETE FROM worker_heartbeats WHERE last_seen < $1"
UPSERT_TICK = """
INSERT INTO scheduler_state (name, last_tick_at, last_duration_ms, last_materialized)
VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE SET last_tick_at = greatest(scheduler_state.last_tick_at,
    excluded.last_tick_at), last_duration_ms = excluded.last_duration_ms,
    last_materialized = excluded.last_materialized
"""


async def beat(
    conn: Connection | asyncpg.Pool,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    started_at: datetime,
    now: datetime,
    in_flight: int,
) -> None:
    await conn.execute(UPSERT_WORKER, worker_id, hostname, pid, started_at, now, in_flight)


async def forget_worker(conn: Connection | asyncpg.Pool, worker_id: str) -> None:
    await conn.execute(DELETE_WORKER, worker_id)


async def prune_workers(conn: Connection | asyncpg.Pool, *, before: datetime) -> None:
    await conn.execute(PRUNE_WORKERS, before)


async def record_tick(
    conn: Connection | asyncpg.Pool,
    *,
    name: str,
    now: datetime,
    duration_ms: float,
    materialized: int,
) -> None:
    await conn.execute(UPSERT_TICK, name, now, duration_ms, materialized)


# a worker is live while its last heartbeat is younger than this many heartbeat periods
LIVE_HEARTBEATS = 3
# the outbox backlog is counted up to here: enough to alert on, cheap to count every tick
OUTBOX_BACKLOG_CAP = 100_000
SELECT_ONE = "SELECT 1"
LIVENESS = """
SELECT
    (SELECT max(last_tick_at) FROM scheduler_state) AS last_tick_at,
    (SELECT count(*) FROM worker_heartbeats WHERE last_seen >= $1) AS live_workers,
    (SELECT coalesce(sum(in_flight), 0) FROM worker_heartbeats WHERE last_seen >= $1)
        AS in_flight,
    (SELECT count(*) FROM (
        SELECT 1 FROM outbox o, relay_cursor c
        WHERE c.name = 'lifecycle' AND (o.tx, o.seq) > (c.last_tx, c.last_seq)
        LIMIT $2
    ) AS pending) AS outbox_backlog
"""


# Every worker heartbeat row with the runs it holds leased now (operators: `ordinaut admin`).
WORKERS = """
SELECT h.worker_id, h.hostname, h.pid, h.started_at, h.last_seen, h.in_flight,
       h.last_seen >= $1 AS live,
       coalesce(array_agg(d.run_id ORDER BY d.run_id) FILTER (WHERE d.run_id IS NOT NULL),
                '{}') AS runs
FROM worker_heartbeats h
LEFT JOIN due_work d ON d.state = 'running' AND d.leased_by = h.worker_id
GROUP BY h.worker_id
ORDER BY h.last_seen >= $1 DESC, h.worker_id
LIMIT $2
"""
SCHEDULERS = """
SELECT name, last_tick_at, last_duration_ms, last_materialized FROM scheduler_state
ORDER BY last_tick_at DESC LIMIT $1
"""


async def workers(
    conn: Connection | asyncpg.Pool, *, since: datetime, limit: int
) -> list[dict[str, Any]]:
    """Workers (live ones first: seen since ``since``) with the run ids each holds leased."""
    return [dict(r) for r in await conn.fetch(WORKERS, since, limit)]


async def schedulers(conn: Connection | asyncpg.Pool, *, limit: int) -> list[dict[str, Any]]:
    """Each scheduler's last tick, most recent first."""
    return [dict(r) for r in await conn.fetch(SCHEDULERS, limit)]


async def ping(conn: Connection) -> None:
    await conn.fetchval(SELECT_ONE)


async def liveness(conn: Connection, *, since: datetime, backlog_cap: int) -> asyncpg.Record:
    """Last tick, workers seen since ``since`` and their runs in flight, and the outbox backlog
    (counted up to a cap)."""
    return one_row(await conn.fetchrow(LIVENESS, since, backlog_cap))
