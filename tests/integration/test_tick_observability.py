"""What the tick tells operators: fleet gauges from the database, rescued dead letters counted,
and the audit log's retention (ORDINAUT_AUDIT_RETENTION_S) in its housekeeping."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from support import queue_runs

from ordinaut import metrics
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick
from ordinaut.store import audit, heartbeats


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels or {})
    assert value is not None, name
    return value


async def test_the_tick_exports_queue_depth_workers_backlog_and_its_own_time(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task(schedule_kind="event", schedule_expr="x.*")
    due = await queue_runs(pool, task, at=clock.now() - timedelta(seconds=30), n=3)
    await queue_runs(pool, task, at=clock.now() + timedelta(hours=1), n=2)
    await pool.execute(
        "UPDATE due_work SET state = 'running', lease_token = gen_random_uuid(),"
        " leased_until = $2::timestamptz + interval '30 s', leased_by = 'w' WHERE run_id = $1",
        due[0],
        clock.now(),
    )
    for worker_id, age_s, in_flight in (("w", 1, 4), ("w2", 2, 3), ("gone", 600, 9)):
        seen = clock.now() - timedelta(seconds=age_s)
        await heartbeats.beat(
            pool,
            worker_id=worker_id,
            hostname="h",
            pid=1,
            started_at=seen,
            now=seen,
            in_flight=in_flight,
        )
    # a relay that has published nothing yet: every queued run's event is backlog
    await pool.execute(
        "INSERT INTO relay_cursor (name, last_tx, last_seq) VALUES ('lifecycle', '0', 0)"
        " ON CONFLICT (name) DO UPDATE SET last_tx = '0', last_seq = 0"
    )
    backlog = await pool.fetchval("SELECT count(*) FROM outbox")
    assert settings.redis_url  # a relay is expected, so unrelayed events are a backlog
    result = await tick(pool, settings, clock)
    assert (result.due, result.running, result.live_workers, result.in_flight) == (2, 1, 2, 7)
    assert result.outbox_backlog == backlog > 0
    assert _value("ordinaut_due_work", {"state": "due"}) == 2
    assert _value("ordinaut_due_work", {"state": "scheduled"}) == 2
    assert _value("ordinaut_due_work", {"state": "running"}) == 1
    assert _value("ordinaut_due_work_lag_seconds") == 30.0
    assert _value("ordinaut_workers_live") == 2
    assert _value("ordinaut_workers_in_flight") == 7
    assert _value("ordinaut_outbox_backlog") == backlog
    assert _value("ordinaut_scheduler_last_tick_timestamp_seconds") == clock.now().timestamp()
    # without Redis nothing relays: events only age out, and no backlog is reported
    assert (await tick(pool, settings.replace(redis_url=""), clock)).outbox_backlog == 0
    assert _value("ordinaut_outbox_backlog") == 0


async def test_a_lease_rescued_past_its_last_attempt_counts_as_a_dead_letter(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task(schedule_kind="event", schedule_expr="x.*", max_retries=0)
    (run_id,) = await queue_runs(pool, task, at=clock.now())
    await pool.execute(
        "UPDATE due_work SET state = 'running', lease_token = gen_random_uuid(),"
        " leased_until = $2::timestamptz - interval '1 s', leased_by = 'w' WHERE run_id = $1",
        run_id,
        clock.now(),
    )
    dead_before = _value("ordinaut_dead_letters_total")
    outcome_before = (
        metrics.REGISTRY.get_sample_value("ordinaut_runs_total", {"outcome": "dead_letter"}) or 0.0
    )
    rescues_before = _value("ordinaut_rescues_total")
    result = await tick(pool, settings.replace(redis_url=""), clock)
    assert result.rescued == 1
    assert await pool.fetchval("SELECT status::text FROM runs WHERE id = $1", run_id) == (
        "dead_letter"
    )
    assert _value("ordinaut_dead_letters_total") == dead_before + 1
    assert _value("ordinaut_runs_total", {"outcome": "dead_letter"}) == outcome_before + 1
    assert _value("ordinaut_rescues_total") == rescues_before + 1


async def _audit(pool: asyncpg.Pool, at: Any, n: int) -> None:
    async with pool.acquire() as conn:
        for i in range(n):
            await audit.record(
                conn,
                actor_id=None,
                action="test.action",
                subject_type="test",
                subject_id=uuid.uuid4(),
                now=at,
                details={"i": i},
            )


async def test_audit_rows_past_their_retention_go_in_the_tick_and_by_default_stay(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    await _audit(pool, clock.now() - timedelta(days=40), 7)
    await _audit(pool, clock.now() - timedelta(days=10), 3)
    base = settings.replace(redis_url="")
    assert base.audit_retention_s == 0  # the default keeps everything
    assert (await tick(pool, base, clock)).pruned_audit == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 10
    pruned_before = metrics.REGISTRY.get_sample_value("ordinaut_audit_pruned_total") or 0.0
    month = base.replace(audit_retention_s=30 * 86_400)
    assert (await tick(pool, month, clock)).pruned_audit == 7
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 3
    assert _value("ordinaut_audit_pruned_total") == pruned_before + 7
    # a pass is bounded: batches of `batch`, at most `max_batches` of them
    assert await audit.prune(pool, before=clock.now(), batch=1, max_batches=2) == 2
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1
