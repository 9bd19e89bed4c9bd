"""The scheduler: ``tick()`` is one idempotent pass; loops, Lambda and tests all call it."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from ordinaut import metrics, tracing
from ordinaut.clock import Clock, DatabaseClock
from ordinaut.config import Settings
from ordinaut.errors import InvalidSchedule
from ordinaut.slots import Policy, plan_slots, slot_key, stored_schedule
from ordinaut.store import audit, db, heartbeats, idempotency, outbox, runs, tasks, work
from ordinaut.store.db import Connection
from ordinaut.store.rows import DueTask

log = logging.getLogger("ordinaut.scheduler")


@dataclass
class TickResult:
    materialized: int = 0
    tasks_advanced: int = 0
    completed: int = 0
    skipped_misfires: int = 0
    rescued: int = 0
    pruned_events: int = 0
    pruned_runs: int = 0
    pruned_audit: int = 0
    duration_ms: float = 0.0
    lag_s: float = 0.0
    # the fleet as this tick saw it (exported as gauges; the alert rules read them)
    due: int = 0
    running: int = 0
    live_workers: int = 0
    in_flight: int = 0
    outbox_backlog: int = 0


async def tick(
    pool: asyncpg.Pool, settings: Settings, clock: Clock, *, name: str = "scheduler"
) -> TickResult:
    """Materialize every slot due within the lookahead, for every active task.

    Safe to run concurrently and to retry: tasks are claimed with SKIP LOCKED and the unique
    (task, slot) key makes a second insert of a slot a no-op.
    """
    with tracing.span("scheduler.tick", attributes={"ordinaut.scheduler": name}) as span:
        result = await _tick(pool, settings, clock, name=name)
        span.set_attributes(
            {
                "ordinaut.tick.materialized": result.materialized,
                "ordinaut.tick.rescued": result.rescued,
                "ordinaut.tick.lag_s": result.lag_s,
            }
        )
        return result


async def _tick(pool: asyncpg.Pool, settings: Settings, clock: Clock, *, name: str) -> TickResult:
    started = time.perf_counter()
    now = clock.now()
    horizon = now + timedelta(seconds=settings.lookahead_s)
    policy_base = (settings.misfire_grace_s, settings.catchup_window_s, settings.run_all_cap)
    result = TickResult()
    deadline = started + max(5.0, settings.tick_interval_s)
    while True:
        async with pool.acquire() as conn, conn.transaction():
            due = await tasks.lock_due_tasks(conn, horizon=horizon, limit=settings.tick_batch)
            if not due:
                break
            await _materialize_rows(
                conn, due, now=now, horizon=horizon, policy_base=policy_base, result=result
            )
        if len(due) < settings.tick_batch or time.perf_counter() > deadline:
            break
    async with pool.acquire() as conn:
        async with conn.transaction():
            rescued = await work.rescue_expired(conn, now=now)
        result.rescued = len(rescued)
        if result.materialized or rescued:
            await work.notify_work(conn)
        stats = await work.queue_stats(conn, now)
        result.lag_s = stats["lag_s"]
        result.due, result.running = stats["due"], stats["running"]
        fleet = await heartbeats.liveness(
            conn,
            since=now - timedelta(seconds=heartbeats.LIVE_HEARTBEATS * settings.heartbeat_s),
            # without Redis no relay runs and the outbox only ages out: nothing is "behind",
            # so nothing is counted (a cap of 0 reads no rows)
            backlog_cap=heartbeats.OUTBOX_BACKLOG_CAP if settings.redis_url else 0,
        )
        result.live_workers = int(fleet["live_workers"])
        result.in_flight = int(fleet["in_flight"])
        result.outbox_backlog = int(fleet["outbox_backlog"])
        result.duration_ms = (time.perf_counter() - started) * 1000.0
        await heartbeats.record_tick(
            conn,
            name=name,
            now=now,
            duration_ms=result.duration_ms,
            materialized=result.materialized,
        )
        try:
            result.pruned_events = await prune_history(conn, settings, now)
            result.pruned_runs = await prune_runs(conn, settings, now)
            result.pruned_audit = await prune_audit(conn, settings, now)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            # housekeeping may wait for the next tick; the tick itself is done and recorded
            log.warning("housekeeping failed", extra={"error": repr(exc)})
    metrics.TICK_DURATION.observe(result.duration_ms / 1000.0)
    metrics.SLOTS_MATERIALIZED.labels("schedule").inc(result.materialized)
    metrics.count_rescued(r.action for r in rescued)
    metrics.DUE_WORK_LAG.set(result.lag_s)
    metrics.DUE_WORK_QUEUED.set(stats["queued"])
    metrics.DUE_WORK.labels("due").set(result.due)
    metrics.DUE_WORK.labels("scheduled").set(stats["queued"] - result.due)
    metrics.DUE_WORK.labels("running").set(result.running)
    metrics.WORKERS_LIVE.set(result.live_workers)
    metrics.WORKERS_IN_FLIGHT.set(result.in_flight)
    metrics.OUTBOX_BACKLOG.set(result.outbox_backlog)
    metrics.SCHEDULER_LAST_TICK.set(now.timestamp())
    return result


async def materialize_due_task(
    pool: asyncpg.Pool, settings: Settings, clock: Clock, task_id: uuid.UUID
) -> int:
    """A task just written that is due now (a one-shot for now, say): its slots at once, as
    the next tick would plan them, so a woken Lambda worker finds them instead of waiting for
    the minute's tick. Safe beside ticks (the task row is locked, slots are unique). Returns
    the slots inserted."""
    now = clock.now()
    horizon = now + timedelta(seconds=settings.lookahead_s)
    policy_base = (settings.misfire_grace_s, settings.catchup_window_s, settings.run_all_cap)
    result = TickResult()
    async with pool.acquire() as conn, conn.transaction():
        due = await tasks.lock_task_if_due(conn, task_id, now=now)
        if due:
            await _materialize_rows(
                conn, due, now=now, horizon=horizon, policy_base=policy_base, result=result
            )
    if result.materialized:
        metrics.SLOTS_MATERIALIZED.labels("schedule").inc(result.materialized)
    return result.materialized


async def _materialize_rows(
    conn: Connection,
    due: list[DueTask],
    *,
    now: datetime,
    horizon: datetime,
    policy_base: tuple[float, float, int],
    result: TickResult,
) -> None:
    """Plan and insert the slots of locked due tasks, and advance the tasks (one transaction:
    the caller's)."""
    slots: list[work.NewSlot] = []
    ids: list[uuid.UUID] = []
    nexts: list[datetime | None] = []
    statuses: list[str] = []
    for task in due:
        try:
            schedule = stored_schedule(
                task.schedule_kind, task.schedule_expr, task.timezone, task.dtstart
            )
        except InvalidSchedule as exc:
            # Validated on write, so only a rule change can bring us here: stop the task
            # loudly instead of retrying it every tick.
            log.error(
                "stored schedule no longer parses; pausing task",
                extra={"task_id": str(task.id), "error": exc.message},
            )
            ids.append(task.id)
            nexts.append(None)
            statuses.append("paused")
            continue
        policy = Policy(task.misfire_policy, *policy_base)
        plan = plan_slots(
            schedule,
            task.next_run_at,
            now=now,
            horizon=horizon,
            policy=policy,
            snoozed_until=task.snoozed_until,
        )
        # a condition task's poll runs its check first (ordinaut.conditions)
        trigger = "condition" if task.schedule_kind == "condition" else "schedule"
        slots.extend(
            work.NewSlot.for_task(
                task,
                slot=slot_key(scheduled_for),
                trigger=trigger,
                scheduled_for=scheduled_for,
                run_at=run_at,
            )
            for scheduled_for, run_at in plan.slots
        )
        if plan.skipped:
            metrics.MISFIRES.labels("skipped").inc(plan.skipped)
        if plan.coalesced:
            metrics.MISFIRES.labels("coalesced").inc(plan.coalesced)
        if plan.caught_up:
            metrics.MISFIRES.labels("run").inc(plan.caught_up)
        result.skipped_misfires += plan.skipped
        ids.append(task.id)
        nexts.append(plan.next_run_at)
        finished = plan.next_run_at is None
        statuses.append("completed" if finished else "active")
        result.completed += int(finished)
    created = await work.materialize(conn, slots, now=now)
    await tasks.advance_tasks(conn, ids, nexts, statuses, now=now)
    result.materialized += len(created)
    result.tasks_advanced += len(ids)


# a worker that has not beaten for this long is not coming back under that id (kill -9, a
# lost host): its heartbeat row goes, so the table holds live and recently stopped workers
STALE_WORKER_S = 86_400.0


async def prune_history(conn: Connection, settings: Settings, now: datetime) -> int:
    """Housekeeping each tick: events past ``outbox_retention_s`` (relayed ones, when a relay
    runs), expired idempotency keys and heartbeats of long-gone workers. Returns the events
    deleted."""
    await heartbeats.prune_workers(conn, before=now - timedelta(seconds=STALE_WORKER_S))
    await idempotency.prune(
        conn, expired_before=now - timedelta(seconds=settings.idempotency_ttl_s)
    )
    pruned = 0
    if settings.outbox_retention_s > 0:
        pruned = await outbox.prune(
            conn,
            before=now - timedelta(seconds=settings.outbox_retention_s),
            relayed_only=bool(settings.redis_url),
        )
        if pruned:
            metrics.OUTBOX_PRUNED.inc(pruned)
    return pruned


async def prune_runs(conn: Connection, settings: Settings, now: datetime) -> int:
    """Finished runs past ``run_retention_s`` (0: none)."""
    if settings.run_retention_s <= 0:
        return 0
    pruned = await runs.prune_finished(
        conn, before=now - timedelta(seconds=settings.run_retention_s)
    )
    if pruned:
        metrics.RUNS_PRUNED.inc(pruned)
    return pruned


async def prune_audit(conn: Connection, settings: Settings, now: datetime) -> int:
    """Audit rows past ``audit_retention_s`` (0: none)."""
    if settings.audit_retention_s <= 0:
        return 0
    pruned = await audit.prune(conn, before=now - timedelta(seconds=settings.audit_retention_s))
    if pruned:
        metrics.AUDIT_PRUNED.inc(pruned)
    return pruned


async def tick_once(settings: Settings) -> TickResult:
    """One tick with a short-lived pool on the database clock (cron jobs, Cloud Run jobs)."""
    pool = await db.create_pool(settings, min_size=1, max_size=2)
    try:
        clock = DatabaseClock()
        await db.sync_clock(pool, clock)
        result = await tick(pool, settings, clock)
        _log_result(result)
        return result
    finally:
        await pool.close()


def _log_result(result: TickResult) -> None:
    if (
        result.materialized
        or result.rescued
        or result.completed
        or result.pruned_events
        or result.pruned_runs
        or result.pruned_audit
    ):
        log.info(
            "tick",
            extra={
                "materialized": result.materialized,
                "rescued": result.rescued,
                "completed": result.completed,
                "pruned_events": result.pruned_events,
                "pruned_runs": result.pruned_runs,
                "pruned_audit": result.pruned_audit,
                "duration_ms": round(result.duration_ms, 2),
                "lag_s": round(result.lag_s, 3),
            },
        )


async def run_scheduler(settings: Settings, stop: asyncio.Event) -> None:
    """The long-running scheduler: APScheduler drives ``tick()`` every ``tick_interval_s``."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    pool = await db.create_pool(settings, min_size=1, max_size=3)
    clock = DatabaseClock()
    await db.sync_clock(pool, clock)
    name = f"scheduler@{socket.gethostname()}"

    async def job() -> None:
        try:
            await db.sync_clock(pool, clock)
            _log_result(await tick(pool, settings, clock, name=name))
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            # The database is the clock and the store: a failed tick is retried next interval.
            log.warning("tick failed", extra={"error": repr(exc)})

    aps = AsyncIOScheduler(timezone="UTC")
    aps.add_job(
        job,
        "interval",
        seconds=settings.tick_interval_s,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        id="tick",
    )
    aps.start()
    log.info("scheduler started", extra={"tick_interval_s": settings.tick_interval_s})
    try:
        await job()
        await stop.wait()
    finally:
        aps.shutdown(wait=False)
        await pool.close()
        log.info("scheduler stopped")
