"""ordinaut.lifecycle without HTTP: which status allows which action, and what each transition
writes (the task row, its queued work, the audit row and the outbox event), on real PostgreSQL
with one frozen instant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ordinaut import lifecycle
from ordinaut.api.schemas import TaskCreate
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.errors import Conflict, InvalidTransition, LimitExceeded, NotFound, RateLimited
from ordinaut.pipeline import default_registry
from ordinaut.scheduler import tick
from ordinaut.schedules import Schedule
from ordinaut.taskdefs import prepare

STATUSES = ("active", "paused", "canceled", "completed")
# The table the module documents, written out independently: (action, status) -> allowed.
EXPECTED = {
    "update": {"active", "paused", "completed"},
    "pause": {"active"},
    "resume": {"paused"},
    "cancel": {"active", "paused", "completed"},
    "snooze": {"active", "paused"},
    "run_now": {"active", "paused", "completed"},
    "delete": set(STATUSES),
}
QUEUED = """
SELECT r.trigger, r.status::text AS status, w.run_at FROM runs r
LEFT JOIN due_work w ON w.run_id = r.id WHERE r.task_id = $1 ORDER BY r.scheduled_for, r.trigger
"""
SET_STATUS = "UPDATE tasks SET status = $2, next_run_at = NULL WHERE id = $1"


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("status", STATUSES)
def test_the_transition_table(action: str, status: str) -> None:
    if status in EXPECTED[action]:
        lifecycle.check(action, status)
        return
    with pytest.raises(InvalidTransition) as caught:
        lifecycle.check(action, status)
    assert status in caught.value.message
    details = caught.value.details
    assert details["status"] == status
    assert sorted(details["allowed_from"]) == sorted(EXPECTED[action])


def test_refusals_keep_their_words() -> None:
    with pytest.raises(InvalidTransition, match="^cannot pause a task that is paused$"):
        lifecycle.check("pause", "paused")
    with pytest.raises(InvalidTransition, match="^a canceled task cannot run$"):
        lifecycle.check("run_now", "canceled")
    with pytest.raises(InvalidTransition, match="^a canceled task cannot be updated$"):
        lifecycle.check("update", "canceled")


@pytest.fixture
def actor(owner: uuid.UUID) -> lifecycle.Actor:
    return lifecycle.Actor(owner, "req-1")


async def _events(pool: asyncpg.Pool, task_id: uuid.UUID) -> list[tuple[str, str | None]]:
    """(outbox event type, matching audit action's request id), oldest first."""
    rows = await pool.fetch(
        "SELECT o.event_type, a.request_id FROM outbox o "
        "LEFT JOIN audit_log a ON a.subject_id = o.subject_id AND a.action = o.event_type "
        "WHERE o.subject_id = $1 ORDER BY o.seq",
        task_id,
    )
    return [(r["event_type"], r["request_id"]) for r in rows]


async def test_pause_drops_scheduled_slots_but_keeps_a_manual_run(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    make_task: Any,
    actor: lifecycle.Actor,
) -> None:
    task = await make_task(schedule_expr="*/5 * * * *")
    await tick(pool, settings.replace(lookahead_s=900), clock)
    now = clock.now()
    async with pool.acquire() as conn:
        await lifecycle.run_now(conn, task["id"], actor, now, runs_per_minute=0)
        row = await lifecycle.pause(conn, task["id"], actor, now)
    assert row["status"] == "paused"
    assert row["next_run_at"] is None
    left = await pool.fetch(QUEUED, task["id"])
    assert [r["trigger"] for r in left] == ["run_now"]  # only what a person asked for stays
    assert await _events(pool, task["id"]) == [("task.paused", "req-1")]
    async with pool.acquire() as conn:
        with pytest.raises(InvalidTransition):
            await lifecycle.pause(conn, task["id"], actor, now)


async def test_resume_recomputes_from_now_and_completes_a_past_one_shot(
    pool: asyncpg.Pool, clock: FrozenClock, make_task: Any, actor: lifecycle.Actor
) -> None:
    task = await make_task(schedule_expr="0 * * * *")
    once = await make_task(schedule_kind="once", schedule_expr="2026-03-02T12:30:00Z")
    async with pool.acquire() as conn:
        for t in (task, once):
            await lifecycle.pause(conn, t["id"], actor, clock.now())
        # past a one-shot's day of grace (taskdefs.first_fire)
        clock.set(datetime(2026, 3, 4, 14, 10, tzinfo=UTC))
        resumed = await lifecycle.resume(conn, task["id"], actor, clock.now())
        finished = await lifecycle.resume(conn, once["id"], actor, clock.now())
        with pytest.raises(InvalidTransition):
            await lifecycle.resume(conn, task["id"], actor, clock.now())
    assert resumed["status"] == "active"
    assert resumed["next_run_at"] == datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
    assert finished["status"] == "completed"
    assert finished["next_run_at"] is None


async def test_cancel_cancels_queued_runs_and_is_final(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    make_task: Any,
    actor: lifecycle.Actor,
) -> None:
    task = await make_task(schedule_expr="*/5 * * * *")
    await tick(pool, settings.replace(lookahead_s=900), clock)
    async with pool.acquire() as conn:
        row = await lifecycle.cancel(conn, task["id"], actor, clock.now())
        assert row["status"] == "canceled"
        assert row["next_run_at"] is None
        for action in ("pause", "resume", "cancel"):
            with pytest.raises(InvalidTransition):
                await getattr(lifecycle, action)(conn, task["id"], actor, clock.now())
        with pytest.raises(InvalidTransition):
            await lifecycle.snooze(conn, task["id"], actor, clock.now(), delay_seconds=60)
        with pytest.raises(InvalidTransition):
            await lifecycle.run_now(conn, task["id"], actor, clock.now(), runs_per_minute=0)
    runs = await pool.fetch(QUEUED, task["id"])
    assert runs
    assert {r["status"] for r in runs} == {"canceled"}
    assert all(r["run_at"] is None for r in runs)  # nothing left for a worker to lease


async def test_snooze_shifts_queued_work_from_now(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    make_task: Any,
    actor: lifecycle.Actor,
) -> None:
    task = await make_task(schedule_expr="*/5 * * * *")
    await tick(pool, settings.replace(lookahead_s=400), clock)  # 12:00 and 12:05
    now = clock.now()
    async with pool.acquire() as conn:
        row = await lifecycle.snooze(
            conn, task["id"], actor, now, delay_seconds=600, reason="meeting"
        )
    assert row["snoozed_until"] == now + timedelta(seconds=600)
    run_at = [r["run_at"] for r in await pool.fetch(QUEUED, task["id"])]
    assert run_at == [
        datetime(2026, 3, 2, 12, 10, tzinfo=UTC),
        datetime(2026, 3, 2, 12, 15, tzinfo=UTC),
    ]
    payload = await pool.fetchval(
        "SELECT payload FROM outbox WHERE subject_id = $1 AND event_type = 'task.snoozed'",
        task["id"],
    )
    assert payload["shifted_runs"] == 2
    assert payload["reason"] == "meeting"


async def test_run_now_queues_at_now_within_the_agents_budget(
    pool: asyncpg.Pool, clock: FrozenClock, make_task: Any, actor: lifecycle.Actor
) -> None:
    task = await make_task(schedule_kind="once", schedule_expr="2026-03-02T12:30:00Z")
    now = clock.now()
    async with pool.acquire() as conn:
        await pool.execute(SET_STATUS, task["id"], "completed")
        run_id = await lifecycle.run_now(conn, task["id"], actor, now, runs_per_minute=2)
        await lifecycle.run_now(conn, task["id"], actor, now, runs_per_minute=2)
        with pytest.raises(RateLimited) as caught:
            await lifecycle.run_now(conn, task["id"], actor, now, runs_per_minute=2)
    assert caught.value.details["retry_after_s"] == 60.0  # the minute just began
    run = await pool.fetchrow(
        "SELECT r.trigger, r.scheduled_for, w.run_at, w.max_attempts FROM runs r "
        "JOIN due_work w ON w.run_id = r.id WHERE r.id = $1",
        run_id,
    )
    assert run["trigger"] == "run_now"
    assert run["scheduled_for"] == run["run_at"] == now
    assert run["max_attempts"] == task["max_retries"] + 1
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE subject_id = $1 ORDER BY id", task["id"]
    )
    assert [a["action"] for a in actions] == ["task.run_now", "task.run_now"]


async def test_delete_removes_the_task_with_its_runs_from_any_status(
    pool: asyncpg.Pool, clock: FrozenClock, make_task: Any, actor: lifecycle.Actor
) -> None:
    task = await make_task()
    async with pool.acquire() as conn:
        await lifecycle.run_now(conn, task["id"], actor, clock.now(), runs_per_minute=0)
        await lifecycle.cancel(conn, task["id"], actor, clock.now())
        await lifecycle.delete(conn, task["id"], actor, clock.now())
        with pytest.raises(NotFound):
            await lifecycle.delete(conn, task["id"], actor, clock.now())
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", task["id"]) == 0
    assert (await _events(pool, task["id"]))[-1] == ("task.deleted", "req-1")


async def test_another_agents_task_is_not_found(
    pool: asyncpg.Pool, clock: FrozenClock, make_task: Any
) -> None:
    task = await make_task()
    stranger = lifecycle.Actor(uuid.uuid4())
    async with pool.acquire() as conn:
        for action in ("pause", "cancel", "delete"):
            with pytest.raises(NotFound):
                await getattr(lifecycle, action)(conn, task["id"], stranger, clock.now())
    assert (await pool.fetchval("SELECT status FROM tasks WHERE id = $1", task["id"])) == "active"


def _validator(settings: Settings, now: datetime, seen: list[Schedule | None]) -> Any:
    """What the API passes: the whole task re-validated, recording the stored schedule."""
    registry = default_registry(settings)
    fields = TaskCreate.model_fields

    def validate(merged: dict[str, Any], stored: Schedule | None) -> dict[str, Any]:
        seen.append(stored)
        return prepare(
            {k: merged[k] for k in fields},
            now=now,
            settings=settings,
            registry=registry,
            stored=stored,
        )

    return validate


async def test_update_follows_a_changed_schedule(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    make_task: Any,
    actor: lifecycle.Actor,
) -> None:
    task = await make_task(schedule_expr="*/5 * * * *")
    paused = await make_task(schedule_expr="*/5 * * * *", title="paused")
    await tick(pool, settings.replace(lookahead_s=900), clock)
    cursor = await pool.fetchval("SELECT next_run_at FROM tasks WHERE id = $1", task["id"])
    now = clock.now()
    seen: list[Schedule | None] = []
    validate = _validator(settings, now, seen)
    async with pool.acquire() as conn:
        await lifecycle.pause(conn, paused["id"], actor, now)
        renamed = await lifecycle.update(
            conn, task["id"], actor, {"title": "renamed"}, now, validate=validate
        )
        assert seen[-1] is not None  # the schedule is unchanged: the stored one is reused
        assert len(await pool.fetch(QUEUED, task["id"])) == 4  # its slots stay
        moved = await lifecycle.update(
            conn, task["id"], actor, {"schedule_expr": "0 13 * * *"}, now, validate=validate
        )
        still_paused = await lifecycle.update(
            conn, paused["id"], actor, {"schedule_expr": "0 13 * * *"}, now, validate=validate
        )
    assert seen[-1] is None
    assert renamed["title"] == "renamed"
    assert renamed["next_run_at"] == cursor
    assert moved["next_run_at"] == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    assert await pool.fetch(QUEUED, task["id"]) == []  # the old slots were dropped
    assert still_paused["status"] == "paused"
    assert still_paused["next_run_at"] is None
    updates = await pool.fetch(
        "SELECT details FROM audit_log WHERE subject_id = $1 AND action = 'task.updated' "
        "ORDER BY id",
        task["id"],
    )
    assert [u["details"] for u in updates] == [
        {"fields": ["title"]},
        {"fields": ["schedule_expr"]},
    ]


async def test_update_revives_a_completed_task_and_refuses_a_canceled_one(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    make_task: Any,
    actor: lifecycle.Actor,
) -> None:
    done = await make_task(schedule_kind="once", schedule_expr="2026-03-02T12:30:00Z")
    gone = await make_task()
    await pool.execute(SET_STATUS, done["id"], "completed")
    now = clock.now()
    validate = _validator(settings, now, [])
    async with pool.acquire() as conn:
        again = await lifecycle.update(
            conn,
            done["id"],
            actor,
            {"schedule_expr": "2026-03-03T08:00:00Z"},
            now,
            validate=validate,
        )
        await lifecycle.cancel(conn, gone["id"], actor, now)
        with pytest.raises(InvalidTransition, match="canceled task cannot be updated"):
            await lifecycle.update(conn, gone["id"], actor, {"title": "x"}, now, validate=validate)
    assert again["status"] == "active"
    assert again["next_run_at"] == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


async def test_create_enforces_the_task_limit_and_the_dedupe_window(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, actor: lifecycle.Actor
) -> None:
    registry = default_registry(settings)
    fields = TaskCreate.model_validate(
        {
            "title": "t",
            "schedule_kind": "cron",
            "schedule_expr": "0 * * * *",
            "payload": {"pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
            "dedupe_key": "daily",
            "dedupe_window_seconds": 3600,
        }
    ).model_dump(mode="json")
    prepared = prepare(fields, now=clock.now(), settings=settings, registry=registry)
    async with pool.acquire() as conn:
        row = await lifecycle.create(conn, actor, prepared, clock.now(), max_tasks=2)
        assert row["status"] == "active"
        assert row["created_by"] == actor.agent_id
        with pytest.raises(Conflict) as dup:
            await lifecycle.create(conn, actor, prepared, clock.now(), max_tasks=2)
        assert dup.value.details["existing_task_id"] == str(row["id"])
        clock.advance(3601)
        await lifecycle.create(conn, actor, prepared, clock.now(), max_tasks=2)
        with pytest.raises(LimitExceeded):
            await lifecycle.create(conn, actor, prepared, clock.now(), max_tasks=2)
    assert await _events(pool, row["id"]) == [("task.created", "req-1")]


async def test_a_transition_joins_the_callers_transaction(
    pool: asyncpg.Pool, clock: FrozenClock, make_task: Any, actor: lifecycle.Actor
) -> None:
    task = await make_task()
    async with pool.acquire() as conn:

        async def pause_then_fail() -> None:
            async with conn.transaction():
                await lifecycle.pause(conn, task["id"], actor, clock.now())
                raise RuntimeError("the caller fails after the transition")

        with pytest.raises(RuntimeError, match="fails after"):
            await pause_then_fail()
        # nothing of it stays: neither the status, nor its audit row and outbox event
        assert await conn.fetchval("SELECT status FROM tasks WHERE id = $1", task["id"]) == (
            "active"
        )
        assert await _events(pool, task["id"]) == []
        async with conn.transaction():
            await lifecycle.pause(conn, task["id"], actor, clock.now())
    assert await _events(pool, task["id"]) == [("task.paused", "req-1")]
