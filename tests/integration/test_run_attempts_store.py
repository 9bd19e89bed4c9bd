"""The attempt records and dead letters written by the paths that end an attempt outside a
worker's own outcome: an expired lease (rescue) and a drain's deadline (cut)."""

from __future__ import annotations

import random
import uuid
from typing import Any

import asyncpg
from support import queue_runs

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.store import runs, work
from ordinaut.worker import Worker


def _worker(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> Worker:
    return Worker(
        pool, settings.replace(lease_seconds=5), clock, worker_id="w", rng=random.Random(1)
    )


async def test_an_expired_lease_is_kept_as_an_attempt_and_the_last_one_dead_letters(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any, owner: uuid.UUID
) -> None:
    task = await make_task(max_retries=1)
    (run_id,) = await queue_runs(pool, task, at=clock.now())
    w = _worker(pool, settings, clock)
    started = clock.now()
    await w.lease(1)
    clock.advance(6)
    assert await w.rescue() == 1  # attempt 1 counts; attempt 2 queued
    await w.lease(1)
    clock.advance(6)
    assert await w.rescue() == 1  # attempt 2 was the last: dead letter
    doc = await runs.run_attempts(pool, run_id, owner)
    first, last = doc["attempts"]
    assert (first["attempt"], first["status"], first["current"]) == (1, "failed", False)
    assert first["error"]["code"] == "lease_expired"
    assert (first["started_at"], first["worker_id"]) == (started, "w")
    assert first["step_results"] == []
    assert (last["attempt"], last["status"], last["current"]) == (2, "dead_letter", True)
    assert last["error"]["code"] == "lease_expired"
    assert last["step_results"] == []
    dead = await pool.fetch("SELECT run_id, owner_id FROM dead_letters")
    assert [(r["run_id"], r["owner_id"]) for r in dead] == [(run_id, owner)]
    # Another owner reads nothing of it.
    other = await runs.attention(pool, uuid.uuid4(), limit=10)
    assert other["dead_letters_total"] == 0


async def test_a_deadline_cut_is_kept_as_an_attempt(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any, owner: uuid.UUID
) -> None:
    task = await make_task(max_retries=2)
    (run_id,) = await queue_runs(pool, task, at=clock.now())
    w = _worker(pool, settings, clock)
    (row,) = await w.lease(1)
    clock.advance(1)
    cut = await work.cut_at_deadline(pool, [(run_id, row.lease_token)], now=clock.now())
    assert [r.action for r in cut] == ["requeued"]
    doc = await runs.run_attempts(pool, run_id, owner)
    first, waiting = doc["attempts"]
    assert (first["attempt"], first["error"]["code"]) == (1, "worker_deadline")
    assert first["finished_at"] == clock.now()
    assert first["duration_ms"] == 1000
    assert (waiting["attempt"], waiting["status"], waiting["started_at"]) == (2, "queued", None)
    assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 0


async def test_a_fenced_retry_records_no_attempt(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any, owner: uuid.UUID
) -> None:
    task = await make_task(max_retries=3)
    (run_id,) = await queue_runs(pool, task, at=clock.now())
    stale = _worker(pool, settings, clock)
    (row,) = await stale.lease(1)
    clock.advance(6)
    assert await stale.rescue() == 1  # the lease expired: attempt 1 kept as lease_expired
    late = work.Outcome(
        run_id,
        row.lease_token,
        row.attempt,
        "retry",
        clock.now(),
        error={"step": "a", "code": "boom", "message": "late"},
        steps=[],
        retry_at=clock.now(),
    )
    assert await stale.record(late, []) is False  # fenced: the lease moved on
    doc = await runs.run_attempts(pool, run_id, owner)
    assert [
        (a["attempt"], a["error"]["code"] if a["error"] else None) for a in doc["attempts"]
    ] == [
        (1, "lease_expired"),
        (2, None),
    ]
    assert await pool.fetchval("SELECT count(*) FROM run_attempts") == 1
