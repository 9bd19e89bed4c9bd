"""Condition tasks: the last evaluated value per task, so edges survive restarts."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from ordinaut.store.db import Connection
from ordinaut.store.rows import ConditionState

LOAD = """
SELECT t.status::text AS status, t.schedule_kind, s.value, s.fired_at, s.evaluated_for, s.evaluated_at
FROM tasks t LEFT JOIN condition_state s ON s.task_id = t.id
WHERE t.id = $1
"""
# Written in the transaction that records the evaluation's run; an evaluation of an older slot
# (a late retry) never overwrites a newer one. INSERT ... SELECT: a task deleted meanwhile
# leaves nothing to write instead of failing the whole batch on its foreign key.
SAVE = """
INSERT INTO condition_state (task_id, value, evaluated_for, evaluated_at, fired_at, last_run_id)
SELECT t.id, $2, $3, $4, $5, $6 FROM tasks t WHERE t.id = $1
ON CONFLICT (task_id) DO UPDATE SET
    value = EXCLUDED.value,
    evaluated_for = EXCLUDED.evaluated_for,
    evaluated_at = EXCLUDED.evaluated_at,
    fired_at = coalesce(EXCLUDED.fired_at, condition_state.fired_at),
    last_run_id = EXCLUDED.last_run_id
WHERE condition_state.evaluated_for <= EXCLUDED.evaluated_for
"""


async def load(conn: Connection | asyncpg.Pool, task_id: UUID) -> ConditionState | None:
    """The task's status and its last evaluation (value None: never evaluated); None if gone."""
    row = await conn.fetchrow(LOAD, task_id)
    return ConditionState.from_row(row) if row else None


async def save(
    conn: Connection,
    task_id: UUID,
    *,
    value: bool,
    evaluated_for: datetime,
    now: datetime,
    fired: bool,
    run_id: UUID,
) -> None:
    """Record one evaluation (and the fire time when it fired)."""
    await conn.execute(SAVE, task_id, value, evaluated_for, now, now if fired else None, run_id)
