"""Typed rows at the store boundary: each type reads the columns its query returns."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from support import queue_runs

from ordinaut.clock import FrozenClock
from ordinaut.slots import idempotency_key
from ordinaut.store import tasks, work
from ordinaut.store.db import one_row
from ordinaut.store.rows import CountedAttempt, DueTask, LeasedRun, SlotTask, TaskRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_a_task_row_names_every_stored_task_column_and_nothing_else() -> None:
    columns = {c.strip() for c in tasks.TASK_COLUMNS.split(",")}
    assert _names(TaskRow) == columns


async def test_a_stored_task_reads_as_a_task_row(pool: asyncpg.Pool, make_task: Any) -> None:
    task = await make_task(concurrency_key="k", overlap_policy="buffer_one", max_retries=4)
    row = TaskRow.from_row(task)
    assert (row.id, row.created_by, row.title) == (task["id"], task["created_by"], "t")
    assert (row.concurrency_key, row.overlap_policy, row.max_retries) == ("k", "buffer_one", 4)
    assert row.payload == task["payload"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.title = "x"  # type: ignore[misc]


async def test_due_tasks_and_leased_runs_are_typed(
    pool: asyncpg.Pool, clock: FrozenClock, make_task: Any
) -> None:
    task = await make_task(schedule_expr="* * * * *")
    async with pool.acquire() as conn, conn.transaction():
        due = await tasks.lock_due_tasks(conn, horizon=clock.now() + timedelta(days=1), limit=5)
    assert [type(d) for d in due] == [DueTask]
    assert (due[0].id, due[0].schedule_expr, due[0].misfire_policy) == (
        task["id"],
        "* * * * *",
        "run_once",
    )
    (run_id,) = await queue_runs(pool, task, at=clock.now())
    async with pool.acquire() as conn:
        (leased,) = await work.lease(conn, now=clock.now(), limit=1, lease_s=30, worker_id="w")
    assert isinstance(leased, LeasedRun)
    assert (leased.run_id, leased.task_id, leased.attempt, leased.max_attempts) == (
        run_id,
        task["id"],
        1,
        task["max_retries"] + 1,
    )
    assert (leased.owner_id, leased.owner_active, leased.trigger) == (
        task["created_by"],
        True,
        "run_now",
    )
    assert leased.as_mapping()["lease_token"] == leased.lease_token


def test_from_row_reads_its_fields_ignores_other_columns_and_refuses_a_missing_one() -> None:
    row = {
        "id": uuid.uuid4(),
        "created_by": uuid.uuid4(),
        "priority": 3,
        "max_retries": 0,
        "concurrency_key": None,
        "overlap_policy": "skip",
        "filter": {"not": "a field"},
    }
    task = SlotTask.from_row(row)
    assert (task.priority, task.max_retries, task.overlap_policy) == (3, 0, "skip")
    del row["priority"]
    with pytest.raises(KeyError, match="priority"):
        SlotTask.from_row(row)


def _task(**changes: Any) -> SlotTask:
    base = SlotTask(uuid.uuid4(), uuid.uuid4(), 7, 2, "ck", "buffer_one")
    return dataclasses.replace(base, **changes)


def test_a_new_slot_copies_its_task() -> None:
    task = _task()
    slot = work.NewSlot.for_task(task, slot="s1", trigger="schedule", scheduled_for=T0)
    assert (slot.task_id, slot.owner_id, slot.slot, slot.trigger) == (
        task.id,
        task.created_by,
        "s1",
        "schedule",
    )
    assert (slot.priority, slot.max_attempts, slot.concurrency_key, slot.buffer_one) == (
        7,
        3,
        "ck",
        True,
    )
    assert (slot.scheduled_for, slot.run_at, slot.event_id, slot.trace_context) == (
        T0,
        T0,
        None,
        None,
    )
    assert slot.idempotency_key == idempotency_key(task.id, "s1")
    other = work.NewSlot.for_task(task, slot="s1", trigger="schedule", scheduled_for=T0)
    assert other.run_id != slot.run_id  # each slot is a new run


def test_a_new_slot_takes_what_the_caller_knows() -> None:
    owner, run_id, late = uuid.uuid4(), uuid.uuid4(), T0 + timedelta(seconds=30)
    slot = work.NewSlot.for_task(
        _task(overlap_policy="allow", max_retries=0),
        slot="event:e1",
        trigger="event",
        scheduled_for=T0,
        run_at=late,
        owner_id=owner,
        event_id="e1",
        run_id=run_id,
        trace_context="00-abc-def-01",
    )
    assert (slot.run_id, slot.owner_id, slot.event_id, slot.trace_context) == (
        run_id,
        owner,
        "e1",
        "00-abc-def-01",
    )
    assert (slot.scheduled_for, slot.run_at, slot.max_attempts, slot.buffer_one) == (
        T0,
        late,
        1,
        False,
    )


async def test_a_rescued_lease_reads_as_a_counted_attempt(
    pool: asyncpg.Pool, clock: FrozenClock, make_task: Any
) -> None:
    task = await make_task(max_retries=1)
    (run_id,) = await queue_runs(pool, task, at=clock.now())
    async with pool.acquire() as conn:
        await work.lease(conn, now=clock.now(), limit=1, lease_s=5, worker_id="w")
        first = await work.rescue_expired(conn, now=clock.now() + timedelta(seconds=6))
        await work.lease(
            conn, now=clock.now() + timedelta(seconds=6), limit=1, lease_s=5, worker_id="w"
        )
        last = await work.rescue_expired(conn, now=clock.now() + timedelta(seconds=12))
    assert first == [CountedAttempt(run_id, task["id"], task["created_by"], "requeued")]
    assert last == [CountedAttempt(run_id, task["id"], task["created_by"], "dead_letter")]


def test_one_row_refuses_a_missing_row() -> None:
    assert one_row({"n": 1}) == {"n": 1}  # type: ignore[arg-type, comparison-overlap]
    with pytest.raises(RuntimeError, match="returned none"):
        one_row(None)
