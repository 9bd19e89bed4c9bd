"""Fairness between agents (issue 17, finding 5): one agent's backlog of long runs may hold at
most ``max_running_per_agent`` worker slots, counted across every worker, so another agent's
run starts while the busy agent's runs are still going."""

from __future__ import annotations

import random
import uuid
from typing import Any

import asyncpg
from support import queue_runs

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

LONG = {"params": {}, "pipeline": [{"id": "w", "uses": "wait", "with": {"seconds": 60}}]}


async def _status(pool: asyncpg.Pool, owner: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status::text, count(*) AS n FROM runs WHERE owner_id = $1 GROUP BY 1", owner
    )
    return {r["status"]: r["n"] for r in rows}


async def test_a_busy_agent_holds_at_most_its_share_of_worker_slots(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    make_task: Any,
    owner: uuid.UUID,
) -> None:
    fair = settings.replace(worker_concurrency=4, lease_batch=4, max_running_per_agent=2)
    busy = await make_task(payload=LONG, overlap_policy="allow", max_retries=0)
    await queue_runs(pool, busy, at=clock.now(), n=20)
    other_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO agents (id, name, scopes, secret_hash, created_at, updated_at)"
        " VALUES ($1, 'b', ARRAY['tasks:write'], 'x', $2, $2)",
        other_id,
        clock.now(),
    )
    other = dict(busy)
    other["id"] = await pool.fetchval(
        "INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, payload,"
        " created_at, updated_at) VALUES ($1, $2, 'b', 'event', 'x', $3, $4, $4) RETURNING id",
        uuid.uuid4(),
        other_id,
        {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
        clock.now(),
    )
    other["created_by"] = other_id
    worker = Worker(pool, fair, clock, worker_id="w1", rng=random.Random(0))
    second = Worker(pool, fair, clock, worker_id="w2", rng=random.Random(0))
    try:
        first = await worker.lease(worker.lease_size())
        worker.start(first)
        assert len(first) == 2  # A's share, though four slots were free
        assert (await _status(pool, owner))["running"] == 2
        # another worker does not hand A more slots either: the share counts the whole fleet
        assert await second.lease(second.lease_size()) == []
        # B asks for a run while A's long runs go on: it starts at once
        (b_run,) = await queue_runs(pool, other, at=clock.now())
        rows = await worker.lease(worker.lease_size())
        assert [r.run_id for r in rows] == [b_run]
        worker.start(rows)
        assert (await _status(pool, owner))["running"] == 2
        assert await pool.fetchval("SELECT status::text FROM runs WHERE id = $1", b_run) in (
            "running",
            "succeeded",
        )
    finally:
        await worker.shutdown(grace_s=0.0)
        await second.shutdown(grace_s=0.0)
    assert (await _status(pool, owner)).get("queued") == 20


async def test_without_a_share_one_agent_may_use_every_slot(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    open_ = settings.replace(worker_concurrency=4, lease_batch=4, max_running_per_agent=0)
    busy = await make_task(payload=LONG, overlap_policy="allow", max_retries=0)
    await queue_runs(pool, busy, at=clock.now(), n=20)
    worker = Worker(pool, open_, clock, worker_id="w1", rng=random.Random(0))
    try:
        rows = await worker.lease(worker.lease_size())
        assert len(rows) == 4
    finally:
        await worker.shutdown(grace_s=0.0)
