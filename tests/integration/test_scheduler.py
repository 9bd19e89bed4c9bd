"""tick(): exact slots, idempotent, safe under concurrent schedulers, misfire policies."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import materialize_due_task, tick

SLOTS = "SELECT scheduled_for FROM runs WHERE task_id = $1 ORDER BY scheduled_for"


async def test_tick_materializes_exact_instants_once(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    clock.set(datetime(2026, 3, 2, 11, 59, 0, tzinfo=UTC))
    task = await make_task(schedule_expr="* * * * *")
    s = settings.replace(lookahead_s=90)
    first = await tick(pool, s, clock)
    assert first.materialized == 2  # 11:59 and 12:00; 12:01 is beyond the 90 s lookahead
    slots = [r["scheduled_for"] for r in await pool.fetch(SLOTS, task["id"])]
    assert slots == [
        datetime(2026, 3, 2, 11, 59, tzinfo=UTC),
        datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
    ]
    again = await tick(pool, s, clock)
    assert again.materialized == 0
    run_at = await pool.fetch("SELECT run_at FROM due_work ORDER BY run_at")
    assert [r["run_at"] for r in run_at] == slots  # workers start at the instant, not the tick


async def test_concurrent_ticks_never_duplicate_a_slot(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    for i in range(40):
        await make_task(schedule_expr=f"{i % 60} * * * *", title=f"t{i}")
    s = settings.replace(lookahead_s=3599, tick_batch=7)
    results = await asyncio.gather(*(tick(pool, s, clock, name=f"s{i}") for i in range(4)))
    total = sum(r.materialized for r in results)
    rows = await pool.fetchval("SELECT count(*) FROM runs")
    distinct = await pool.fetchval("SELECT count(DISTINCT (task_id, slot)) FROM runs")
    assert rows == distinct == total == 40
    # a retried tick changes nothing
    assert (await tick(pool, s, clock)).materialized == 0


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("skip", 0), ("run_once", 1), ("run_all", 12)],
)
async def test_misfire_policies_after_downtime(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    make_task: Any,
    policy: str,
    expected: int,
) -> None:
    task = await make_task(schedule_expr="*/5 * * * *", misfire_policy=policy)
    # The scheduler was down for an hour: 12 slots passed.
    clock.advance(hours=1)
    s = settings.replace(lookahead_s=10, misfire_grace_s=60)
    await tick(pool, s, clock)
    missed = await pool.fetchval(
        "SELECT count(*) FROM runs WHERE task_id = $1 AND scheduled_for < $2",
        task["id"],
        clock.now() - timedelta(seconds=60),
    )
    assert missed == expected
    nxt = await pool.fetchval("SELECT next_run_at FROM tasks WHERE id = $1", task["id"])
    assert nxt > clock.now()  # a long outage never disables a schedule


async def test_run_all_is_capped(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    await make_task(schedule_expr="* * * * *", misfire_policy="run_all")
    clock.advance(hours=2)
    s = settings.replace(lookahead_s=10, run_all_cap=25)
    result = await tick(pool, s, clock)
    # the 25 most recent missed slots, plus 13:59 and 14:00 which are inside the grace period
    assert result.materialized == 27
    oldest = await pool.fetchval("SELECT min(scheduled_for) FROM runs")
    assert oldest == clock.now() - timedelta(minutes=26)


async def test_paused_and_once_tasks(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    paused = await make_task(schedule_expr="* * * * *")
    await pool.execute("UPDATE tasks SET status = 'paused' WHERE id = $1", paused["id"])
    once = await make_task(
        schedule_kind="once", schedule_expr=(clock.now() + timedelta(seconds=30)).isoformat()
    )
    result = await tick(pool, settings.replace(lookahead_s=60), clock)
    assert result.materialized == 1
    row = await pool.fetchrow("SELECT status, next_run_at FROM tasks WHERE id = $1", once["id"])
    assert row["status"] == "completed"
    assert row["next_run_at"] is None
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", paused["id"]) == 0


async def test_a_deactivated_agents_due_task_waits_on_both_paths(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any, owner: uuid.UUID
) -> None:
    # The tick and the one-task path (a task written due now) read with one predicate: a
    # deactivated agent's task is materialized by neither, and runs again once it is active.
    due = await make_task(schedule_kind="once", schedule_expr=clock.now().isoformat())
    await pool.execute("UPDATE agents SET is_active = false WHERE id = $1", owner)
    assert await materialize_due_task(pool, settings, clock, due["id"]) == 0
    assert (await tick(pool, settings.replace(lookahead_s=60), clock)).materialized == 0
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", due["id"]) == 0
    await pool.execute("UPDATE agents SET is_active = true WHERE id = $1", owner)
    assert await materialize_due_task(pool, settings, clock, due["id"]) == 1
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", due["id"]) == 1


async def test_dst_spring_forward_in_new_york(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    # 02:30 does not exist on 2026-03-08 in New York: it fires once at 03:30 EDT (07:30Z).
    clock.set(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    task = await make_task(schedule_expr="30 2 * * *", timezone="America/New_York")
    clock.set(datetime(2026, 3, 8, 7, 0, tzinfo=UTC))
    await pool.execute(
        "UPDATE tasks SET next_run_at = $2 WHERE id = $1",
        task["id"],
        datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
    )
    await tick(pool, settings.replace(lookahead_s=3600), clock)
    slots = [r["scheduled_for"] for r in await pool.fetch(SLOTS, task["id"])]
    assert slots == [datetime(2026, 3, 8, 7, 30, tzinfo=UTC)]
