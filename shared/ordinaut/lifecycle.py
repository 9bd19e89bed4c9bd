"""A task's lifecycle: which status allows which action, and each action as one transaction.

Statuses: ``active`` (scheduled), ``paused`` (kept, not scheduled), ``completed`` (a time
schedule with no fire time left), ``canceled`` (ended for good; only deletion remains).

| action  | allowed from                   | to                                                |
| ------- | ------------------------------ | ------------------------------------------------- |
| create  | -                              | active (or completed: a schedule already past)    |
| update  | active, paused, completed      | unchanged, unless the schedule changed (below)    |
| pause   | active                         | paused; queued scheduled slots are dropped        |
| resume  | paused                         | active from now on (completed: nothing left)      |
| cancel  | active, paused, completed      | canceled; queued runs are canceled                |
| snooze  | active, paused                 | unchanged; queued runs wait ``delay_seconds``     |
| run_now | active, paused, completed      | unchanged; one run queued now                     |
| delete  | every status                   | gone, with its runs and pending work              |

An update that changes the schedule drops the queued scheduled slots and recomputes the
status: a paused task stays paused (no next fire time), a time schedule with no fire time
left completes, and a completed task with a new fire time is active again.

Every function takes a connection and the caller's one reading of the clock (``now``); each
locks the task row, checks the transition, writes the row, and records the audit row and the
outbox event in one transaction (the caller's, when it has one open; ``create`` writes all of
it in one statement, so it also takes a pool). A task belongs to the agent acting on it:
another agent's task is ``NotFound`` exactly like a missing one.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut import auth, events, tracing
from ordinaut.errors import Conflict, InvalidTransition, LimitExceeded, RateLimited
from ordinaut.schedules import Schedule
from ordinaut.slots import stored_schedule
from ordinaut.store import agents, audit, outbox, tasks, work
from ordinaut.store.db import Connection, connection
from ordinaut.store.quota import RunQuota
from ordinaut.store.rows import SlotTask
from ordinaut.taskdefs import SCHEDULE_FIELDS, first_fire
from ordinaut.vocabulary import TASK_STATUSES, TIME_KINDS

# action -> the statuses it is allowed from (in the order error details list them)
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "update": ("active", "paused", "completed"),
    "pause": ("active",),
    "resume": ("paused",),
    "cancel": ("active", "paused", "completed"),
    "snooze": ("active", "paused"),
    "run_now": ("active", "paused", "completed"),
    "delete": TASK_STATUSES,
}
# What an InvalidTransition says, by action ({status} is the task's current one).
REFUSALS = {
    "update": "a {status} task cannot be updated",
    "run_now": "a {status} task cannot run",
}
# Queued work a schedule (not a person or an event) created: dropped on pause or reschedule.
SCHEDULED_TRIGGERS = ["schedule", "condition"]

# Validates a whole task (the stored row with the changes applied) and returns it normalized;
# ``stored`` is the unchanged schedule when the change leaves it alone (taskdefs.prepare).
Validate = Callable[[dict[str, Any], Schedule | None], dict[str, Any]]


@dataclass(frozen=True)
class Actor:
    """Who acts: the agent owning the task, and the request it came in (for the audit row)."""

    agent_id: UUID
    request_id: str | None = None


def check(action: str, status: str) -> None:
    """InvalidTransition (409) unless a task in ``status`` allows ``action``."""
    allowed = ALLOWED_FROM[action]
    if status in allowed:
        return
    message = REFUSALS.get(action, "cannot {action} a task that is {status}")
    raise InvalidTransition(
        message.format(action=action.replace("_", " "), status=status),
        {"status": status, "allowed_from": list(allowed)},
    )


async def record(
    conn: Connection,
    actor: Actor,
    action: str,
    task: dict[str, Any],
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Audit row + outbox event for one task mutation, inside its transaction."""
    await audit.record(
        conn,
        actor_id=actor.agent_id,
        action=action,
        subject_type="task",
        subject_id=task["id"],
        now=now,
        details=details,
        request_id=actor.request_id,
    )
    await outbox.append(
        conn,
        [
            outbox.OutboxEvent(
                event_type=action,
                tenant_id=actor.agent_id,
                subject_id=task["id"],
                payload={"task_id": str(task["id"]), "status": task["status"], **(details or {})},
            )
        ],
        now=now,
    )


async def create(
    conn: Connection | asyncpg.Pool,
    actor: Actor,
    prepared: dict[str, Any],
    now: datetime,
    *,
    max_tasks: int,
) -> dict[str, Any]:
    """Store a validated task (``taskdefs.prepare``) as active; returns the row.

    422 when the agent already owns ``max_tasks`` tasks; 409 when ``dedupe_key`` matches a
    task created inside ``dedupe_window_seconds``. The quota check (the agent's counter row,
    locked), the insert, its audit row and its outbox event are one statement: atomic on its
    own, so a pool may be given and no transaction round trips are paid; a dedupe check
    joins it in a transaction (the caller's, when open)."""
    if not dedupes(prepared):
        return await _insert(conn, actor, prepared, now, max_tasks)
    async with connection(conn) as own, _atomic(own):
        if await tasks.count_owned(own, actor.agent_id) >= max_tasks:
            raise _limit(max_tasks)  # the limit answers first, as without a dedupe key
        since = now - timedelta(seconds=prepared["dedupe_window_seconds"])
        dup = await tasks.find_recent_duplicate(own, actor.agent_id, prepared["dedupe_key"], since)
        if dup is not None:
            raise Conflict(
                "a task with this dedupe_key was created inside its dedupe window",
                {"existing_task_id": str(dup["id"]), "dedupe_key": prepared["dedupe_key"]},
            )
        return await _insert(own, actor, prepared, now, max_tasks)


async def create_granted(
    db: Connection | asyncpg.Pool,
    *,
    digest: bytes,
    now: datetime,
    prepared: dict[str, Any],
    required: frozenset[str],
    admit: Callable[[agents.Grant | None], object],
    request_id: str | None,
    max_tasks: int,
) -> dict[str, Any]:
    """``create`` for the agent of the access token whose digest is ``digest``, the token
    checked in the same statement as the write (one round trip: no dedupe key, see
    ``dedupes``). The task is written only when the token is live and holds every scope of
    ``required`` (or admin); ``admit`` then judges the grant that came back exactly as it
    would have before the write (401, 403), and 422 follows when the agent already owned
    ``max_tasks`` tasks."""
    if dedupes(prepared):
        raise ValueError("a create with a dedupe key takes create(), in a transaction")
    grant, row = await tasks.create_task_granted(
        db,
        digest=digest,
        now=now,
        required=required,
        admin=auth.ADMIN,
        task=_new(prepared),
        max_owned=max_tasks,
        action=events.TASK_CREATED,
        request_id=request_id,
    )
    admit(grant)
    if row is None:
        raise _limit(max_tasks)
    return row


def dedupes(prepared: dict[str, Any]) -> bool:
    """Whether a create must first look for a recent task with the same ``dedupe_key``."""
    return bool(prepared.get("dedupe_key") and prepared.get("dedupe_window_seconds"))


async def _insert(
    conn: Connection | asyncpg.Pool,
    actor: Actor,
    prepared: dict[str, Any],
    now: datetime,
    max_tasks: int,
) -> dict[str, Any]:
    row = await tasks.create_task(
        conn,
        task_id=uuid.uuid4(),
        owner_id=actor.agent_id,
        task=_new(prepared),
        now=now,
        max_owned=max_tasks,
        action=events.TASK_CREATED,
        request_id=actor.request_id,
    )
    if row is None:
        raise _limit(max_tasks)
    return row


def _new(prepared: dict[str, Any]) -> dict[str, Any]:
    """A validated task as a create stores it: active, not snoozed."""
    return {**prepared, "status": "active", "snoozed_until": None}


def _limit(max_tasks: int) -> LimitExceeded:
    return LimitExceeded(
        f"an agent may own at most {max_tasks} tasks",
        [{"field": "tasks", "limit": "max_tasks_per_agent"}],
    )


async def update(
    conn: Connection,
    task_id: UUID,
    actor: Actor,
    changes: dict[str, Any],
    now: datetime,
    *,
    validate: Validate,
) -> dict[str, Any]:
    """Apply ``changes`` (validated whole by ``validate``); returns the row. A changed
    schedule drops the queued scheduled slots and takes effect from the next tick."""
    async with _atomic(conn):
        current = await tasks.get_task(conn, task_id, actor.agent_id, lock=True)
        check("update", current["status"])
        merged = {**current, **changes}
        schedule_changed = any(merged[f] != current[f] for f in SCHEDULE_FIELDS)
        stored = None
        if not schedule_changed:
            stored = stored_schedule(
                current["schedule_kind"],
                current["schedule_expr"],
                current["timezone"],
                current["dtstart"],
            )
        prepared = validate(merged, stored)
        task = {**current, **prepared}
        if schedule_changed:
            await work.drop_pending(conn, task_id, triggers=SCHEDULED_TRIGGERS)
            if current["status"] == "paused":
                task["next_run_at"] = None
            elif task["next_run_at"] is None and prepared["schedule_kind"] in TIME_KINDS:
                task["status"] = "completed"
            elif current["status"] == "completed":
                task["status"] = "active"
        else:
            task["next_run_at"] = current["next_run_at"]
            task["dtstart"] = current["dtstart"]
        row = await tasks.update_task(conn, owner_id=actor.agent_id, task=task, now=now)
        changed = sorted(k for k in changes if changes[k] != current.get(k))
        await record(conn, actor, events.TASK_UPDATED, row, now, {"fields": changed})
    return row


async def pause(conn: Connection, task_id: UUID, actor: Actor, now: datetime) -> dict[str, Any]:
    """Stop scheduling new runs; queued scheduled slots are dropped (409 unless active)."""
    async with _atomic(conn):
        current = await tasks.get_task(conn, task_id, actor.agent_id, lock=True)
        check("pause", current["status"])
        await work.drop_pending(conn, task_id, triggers=SCHEDULED_TRIGGERS)
        task = dict(current, status="paused", next_run_at=None)
        return await _write(conn, actor, events.TASK_PAUSED, task, now)


async def resume(conn: Connection, task_id: UUID, actor: Actor, now: datetime) -> dict[str, Any]:
    """Schedule again from ``now`` on (409 unless paused); a time schedule with no fire time
    left completes instead."""
    async with _atomic(conn):
        current = await tasks.get_task(conn, task_id, actor.agent_id, lock=True)
        check("resume", current["status"])
        schedule = stored_schedule(
            current["schedule_kind"],
            current["schedule_expr"],
            current["timezone"],
            current["dtstart"],
        )
        task = dict(current, status="active", next_run_at=first_fire(schedule, now))
        if task["next_run_at"] is None and schedule.kind in TIME_KINDS:
            task["status"] = "completed"
        return await _write(conn, actor, events.TASK_RESUMED, task, now)


async def cancel(conn: Connection, task_id: UUID, actor: Actor, now: datetime) -> dict[str, Any]:
    """End the task for good; its queued runs are canceled (409 when already canceled)."""
    async with _atomic(conn):
        current = await tasks.get_task(conn, task_id, actor.agent_id, lock=True)
        check("cancel", current["status"])
        await work.cancel_queued(conn, task_id, now=now, reason="task canceled")
        task = dict(current, status="canceled", next_run_at=None)
        return await _write(conn, actor, events.TASK_CANCELED, task, now)


async def snooze(
    conn: Connection,
    task_id: UUID,
    actor: Actor,
    now: datetime,
    *,
    delay_seconds: int,
    reason: str | None = None,
) -> dict[str, Any]:
    """Postpone queued runs by ``delay_seconds``; slots due before then start at its end
    (409 unless active or paused)."""
    async with _atomic(conn):
        current = await tasks.get_task(conn, task_id, actor.agent_id, lock=True)
        check("snooze", current["status"])
        shifted = await work.snooze_queued(conn, task_id, now=now, delay_s=delay_seconds)
        task = dict(current, snoozed_until=now + timedelta(seconds=delay_seconds))
        details = {"delay_seconds": delay_seconds, "reason": reason, "shifted_runs": shifted}
        return await _write(conn, actor, events.TASK_SNOOZED, task, now, details)


async def run_now(
    conn: Connection,
    task_id: UUID,
    actor: Actor,
    now: datetime,
    *,
    runs_per_minute: int,
) -> UUID:
    """Queue one run of the task for ``now`` whatever its schedule; returns the run's id.

    409 for a canceled task; 429 when the agent queued ``runs_per_minute`` runs this minute
    (0: no budget). Workers listening on the connection's channel are notified on commit."""
    async with _atomic(conn):
        current = await tasks.get_task(conn, task_id, actor.agent_id, lock=True)
        check("run_now", current["status"])
        quota = RunQuota(runs_per_minute, now)
        if not (await quota.allow(conn, {actor.agent_id: 1}))[actor.agent_id]:
            raise RateLimited(
                f"this agent queued {runs_per_minute} runs this minute "
                "(max_runs_per_minute_per_agent)",
                {
                    "limit": "max_runs_per_minute_per_agent",
                    "max": runs_per_minute,
                    "retry_after_s": quota.retry_after_s,
                },
            )
        run_id = uuid.uuid4()
        slot = f"manual:{run_id}"
        await work.materialize(
            conn,
            [
                work.NewSlot.for_task(
                    SlotTask.from_row(current),
                    run_id=run_id,
                    owner_id=actor.agent_id,
                    slot=slot,
                    trigger="run_now",
                    scheduled_for=now,
                    trace_context=tracing.current_traceparent(),
                )
            ],
            now=now,
        )
        await audit.record(
            conn,
            actor_id=actor.agent_id,
            action="task.run_now",
            subject_type="task",
            subject_id=task_id,
            now=now,
            details={"run_id": str(run_id)},
            request_id=actor.request_id,
        )
        await quota.charge(conn)  # last: see store/quota.py
        await work.notify_work(conn)
    return run_id


async def delete(conn: Connection, task_id: UUID, actor: Actor, now: datetime) -> None:
    """Delete the task with its runs and pending work (any status)."""
    async with _atomic(conn):
        current = await tasks.get_task(conn, task_id, actor.agent_id, lock=True)
        check("delete", current["status"])
        await tasks.delete_task(conn, task_id, actor.agent_id)
        await record(conn, actor, events.TASK_DELETED, current, now)


def _atomic(conn: Connection) -> contextlib.AbstractAsyncContextManager[Any]:
    """A transaction, or the caller's when it has one open (one commit, no savepoint)."""
    if conn.is_in_transaction():
        return contextlib.nullcontext()
    return conn.transaction()


async def _write(
    conn: Connection,
    actor: Actor,
    action: str,
    task: dict[str, Any],
    now: datetime,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    row = await tasks.update_task(conn, owner_id=actor.agent_id, task=task, now=now)
    await record(conn, actor, action, row, now, details)
    return row
