"""Housekeeping in the tick: old outbox events and long-gone workers' heartbeats go."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from support import queue_runs

from ordinaut import events, notifier
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick
from ordinaut.store import heartbeats, outbox


async def _append(pool: asyncpg.Pool, n: int, at: datetime, *, routed: bool = True) -> None:
    async with pool.acquire() as conn:
        await outbox.append(
            conn,
            [outbox.OutboxEvent("run.started", None, uuid.uuid4(), {"i": i}) for i in range(n)],
            now=at,
        )
    if routed:  # the outcome router (notifications, lifecycle events) moved past them
        while await notifier.route_once(pool, now=at, settings=Settings()):
            pass


async def test_events_the_outcome_router_has_not_passed_stay(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    cutoff = clock.now() - timedelta(days=1)
    await _append(pool, 5, clock.now() - timedelta(days=3), routed=False)
    assert await outbox.prune(pool, before=cutoff, relayed_only=False) == 0
    await _append(pool, 1, clock.now())
    assert await outbox.prune(pool, before=cutoff, relayed_only=False) == 5


async def test_old_events_go_only_once_relayed_and_new_ones_stay(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    old = clock.now() - timedelta(days=3)
    await _append(pool, 30, old)
    cutoff = clock.now() - timedelta(days=1)
    # a relay runs but has published nothing yet: nothing may go
    assert await outbox.prune(pool, before=cutoff, relayed_only=True, batch=7) == 0
    redis = events.connect_redis(settings)
    try:
        await redis.delete(events.LIFECYCLE_STREAM)
        assert await events.relay_once(pool, redis, now=clock.now(), batch=20) == 20
        await _append(pool, 5, clock.now())  # recent: kept whatever happens
        assert await outbox.prune(pool, before=cutoff, relayed_only=True, batch=7) == 20
        left = await pool.fetch("SELECT created_at FROM outbox ORDER BY seq")
        assert len(left) == 15
        assert sum(r["created_at"] == old for r in left) == 10
        assert await events.relay_pending(pool, redis, clock.now, settings) == 15
        assert await outbox.prune(pool, before=cutoff, relayed_only=True, batch=7) == 10
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 5
        await redis.delete(events.LIFECYCLE_STREAM)
    finally:
        await redis.aclose()


async def test_without_a_relay_age_alone_decides_and_a_pass_is_bounded(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    await _append(pool, 50, clock.now() - timedelta(days=3))
    cutoff = clock.now() - timedelta(days=1)
    assert (
        await outbox.prune(pool, before=cutoff, relayed_only=False, batch=10, max_batches=2) == 20
    )
    assert await outbox.prune(pool, before=cutoff, relayed_only=False, batch=10) == 30
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_the_tick_prunes_events_and_forgets_long_gone_workers(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    no_relay = settings.replace(redis_url="", outbox_retention_s=3600)
    await _append(pool, 4, clock.now() - timedelta(hours=2))
    await _append(pool, 3, clock.now() - timedelta(minutes=10))
    for name, seen in (("gone", timedelta(days=2)), ("alive", timedelta(seconds=5))):
        await heartbeats.beat(
            pool,
            worker_id=name,
            hostname="h",
            pid=1,
            started_at=clock.now() - seen,
            now=clock.now() - seen,
            in_flight=0,
        )
    result = await tick(pool, no_relay, clock)
    assert result.pruned_events == 4
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 3
    workers = [r["worker_id"] for r in await pool.fetch("SELECT worker_id FROM worker_heartbeats")]
    assert workers == ["alive"]
    keep_all = no_relay.replace(outbox_retention_s=0)
    clock.advance(7 * 86_400)
    assert (await tick(pool, keep_all, clock)).pruned_events == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 3


async def test_finished_runs_past_their_retention_go_and_pending_ones_never(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    from ordinaut.store import runs
    from ordinaut.worker import Worker

    task = await make_task()
    old_ids = await queue_runs(pool, task, at=clock.now(), n=5)
    worker = Worker(pool, settings, clock, worker_id="w1")
    assert await worker.run_once() == 5  # finished, created now
    (stuck,) = await queue_runs(
        pool, task, at=clock.now()
    )  # queued: never pruned, whatever its age
    clock.advance(10 * 86_400)
    (recent,) = await queue_runs(pool, task, at=clock.now())
    assert await worker.run_once() == 2
    keep = settings.replace(redis_url="", run_retention_s=0)
    assert (await tick(pool, keep, clock)).pruned_runs == 0
    await pool.execute("UPDATE due_work SET run_at = $2 WHERE run_id = $1", stuck, clock.now())
    await pool.execute(
        "UPDATE runs SET status = 'queued', started_at = NULL, finished_at = NULL,"
        " created_at = $2 WHERE id = $1",
        stuck,
        clock.now() - timedelta(days=20),
    )
    week = settings.replace(redis_url="", run_retention_s=7 * 86_400)
    result = await tick(pool, week, clock)
    assert result.pruned_runs == 5
    mine = {stuck, recent, *old_ids}  # (the ticks also queued the task's own cron slots)
    left = {r["id"] for r in await pool.fetch("SELECT id FROM runs")} & mine
    assert left == {stuck, recent}
    soon = clock.now() + timedelta(seconds=1)
    assert await runs.prune_finished(pool, before=soon) == 1  # recent: the cron slots wait
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE id = $1", recent) == 0
