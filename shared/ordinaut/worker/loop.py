"""The long-running worker process: ``run_worker`` and the jobs it runs beside the leasing.

It sleeps until the next due instant, a wake-up (``LISTEN`` on ``work.WAKE_CHANNEL``) or a
freed slot, then leases. Beside it: the heartbeat (with the clock's resync), the rescue of
expired leases, the outbox relay to Redis, the notifier (webhooks and lifecycle events of
ended runs) and, with Redis, the ingest stream's consumer. On
stop, runs in flight get the lease's length to finish; what is left is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from ordinaut import consumer, events, logs, notifier
from ordinaut.clock import Clock, DatabaseClock
from ordinaut.config import Settings
from ordinaut.store import db, heartbeats, work
from ordinaut.worker.core import Worker

log = logging.getLogger("ordinaut.worker")


async def _periodic(
    stop: asyncio.Event, interval: float, fn: Callable[[], Awaitable[Any]], what: str
) -> None:
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            await fn()
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.warning(f"{what} failed", extra={"error": repr(exc)})


async def run_worker(
    settings: Settings, stop: asyncio.Event, *, worker_id: str | None = None
) -> None:
    """The long-running worker: sleeps until the next due instant or a wake-up, then leases."""
    pool = await db.create_pool(
        settings, min_size=2, max_size=max(4, min(settings.worker_concurrency, 10))
    )
    clock = DatabaseClock()
    await db.sync_clock(pool, clock)
    worker = Worker(pool, settings, clock, worker_id=worker_id)
    logs.bind(worker_id=worker.worker_id)
    wake = asyncio.Event()
    listener = await db.connect(settings)

    def on_notify(*_: object) -> None:
        wake.set()

    await listener.add_listener(work.WAKE_CHANNEL, on_notify)

    async def beat_and_sync() -> None:
        await db.sync_clock(pool, clock)
        await worker.heartbeat()

    redis = events.connect_redis(settings) if settings.redis_url else None

    async def relay() -> None:
        # The outbox relay lives in the worker process; while Redis is down the outbox grows
        # and /health says degraded, and this catches up in order when it returns.
        if redis is None:
            return
        await events.relay_pending(pool, redis, clock.now, settings)

    # notifications and lifecycle events of ended runs (ordinaut.notifier), never in a run's way
    deliverer = notifier.Deliverer(pool, settings)

    async def route_outcomes() -> None:
        await notifier.relay(pool, deliverer, clock.now, settings)

    background = [
        asyncio.create_task(
            _periodic(stop, settings.notify_interval_s, route_outcomes, "run outcomes")
        ),
        asyncio.create_task(_periodic(stop, settings.heartbeat_s, beat_and_sync, "heartbeat")),
        asyncio.create_task(_periodic(stop, settings.rescue_interval_s, worker.rescue, "rescue")),
        asyncio.create_task(_periodic(stop, settings.relay_interval_s, relay, "event relay")),
    ]
    if redis is not None:
        # the ingest stream's consumer group feeds event tasks (ordinaut.consumer)
        background.append(
            asyncio.create_task(
                consumer.run_consumer(pool, redis, settings, clock, stop, name=worker.worker_id)
            )
        )
    await worker.heartbeat()
    log.info("worker started", extra={"concurrency": settings.worker_concurrency})
    try:
        while not stop.is_set():
            pause = await _lease_round(worker, clock, settings)
            if pause is not None:
                await _wait_for_work(worker, wake, stop, pause)
    finally:
        log.info("worker stopping", extra={"in_flight": len(worker.in_flight)})
        for t in background:
            t.cancel()
        await worker.shutdown(grace_s=settings.lease_seconds)
        with contextlib.suppress(Exception):
            await heartbeats.forget_worker(pool, worker.worker_id)
        await listener.close()
        if redis is not None:
            await redis.aclose()
        await pool.close()
        log.info("worker stopped")


async def _lease_round(worker: Worker, clock: Clock, settings: Settings) -> float | None:
    """Lease what the free slots allow and start it; the seconds to wait before the next
    round, or None when the lease came back full and the next round should start at once."""
    want = worker.lease_size()
    if not want:
        return settings.poll_interval_s
    try:
        rows = await worker.lease(want)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        log.warning("lease failed", extra={"error": repr(exc)})
        rows = []
        await asyncio.sleep(settings.poll_interval_s)
    worker.start(list(rows))
    if rows and len(rows) == want:
        return None
    return await _until_next_due(worker, clock, settings)


async def _wait_for_work(
    worker: Worker, wake: asyncio.Event, stop: asyncio.Event, seconds: float
) -> None:
    """Sleep until a wake-up notification, a stop, a freed slot or `seconds` pass."""
    wake.clear()
    worker.slot_freed.clear()
    waiters = [
        asyncio.create_task(wake.wait()),
        asyncio.create_task(stop.wait()),
        asyncio.create_task(worker.slot_freed.wait()),
    ]
    await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()


async def _until_next_due(worker: Worker, clock: Clock, settings: Settings) -> float:
    """Seconds to sleep: until the earliest queued instant, capped by the poll interval."""
    try:
        next_at: datetime | None = await work.next_due_at(worker.pool)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return settings.poll_interval_s
    if next_at is None:
        return settings.poll_interval_s
    if next_at <= worker.last_lease_at:
        # It was due when we leased and we did not get it: blocked by overlap or a
        # concurrency key (or another worker is about to take it). Poll instead of spinning.
        return min(settings.poll_interval_s, 0.25)
    # Otherwise sleep until its instant; 0 when it became due since our lease.
    delta = (next_at - clock.now()).total_seconds()
    return min(settings.poll_interval_s, max(0.0, delta + 0.0005))
