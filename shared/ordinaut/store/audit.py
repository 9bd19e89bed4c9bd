"""Audit log: one row per mutation, written in the mutation's transaction; read by GET /audit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.store.db import Connection, delete_in_batches, like_literal

INSERT_AUDIT = """
INSERT INTO audit_log (actor_id, action, subject_type, subject_id, details, request_id,
                       created_at, owner_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


async def record(
    conn: Connection,
    *,
    actor_id: UUID | None,
    action: str,
    subject_type: str,
    subject_id: UUID | None,
    now: datetime,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
    owner_id: UUID | None = None,
) -> None:
    """Append one audit row (call inside the mutation's transaction). ``owner_id`` names the
    agent owning the subject when the actor is someone else (an admin retrying another agent's
    run), so that agent sees it in its own audit log."""
    await conn.execute(
        INSERT_AUDIT,
        actor_id,
        action,
        subject_type,
        subject_id,
        details or {},
        request_id,
        now,
        owner_id if owner_id != actor_id else None,
    )


@dataclass(frozen=True)
class AuditFilter:
    """What GET /audit narrows by; ``viewer`` None reads every agent's rows (admin)."""

    viewer: UUID | None = None
    actor: UUID | None = None
    subject_type: str | None = None
    subject_id: UUID | None = None
    action: str | None = None  # exact, or a prefix when it ends in '*' ("task.*")
    since: datetime | None = None
    until: datetime | None = None

    def args(self) -> tuple[Any, ...]:
        action, prefix = self.action, None
        if action is not None and action.endswith("*"):
            prefix = like_literal(action[:-1]) + "%"
            action = None
        return (
            self.viewer,
            self.actor,
            self.subject_type,
            self.subject_id,
            action,
            prefix,
            self.since,
            self.until,
        )


AUDIT_COLUMNS = (
    "id, created_at, actor_id, action, subject_type, subject_id, owner_id, request_id, details"
)
AUDIT_FILTERS = """
  AND ($2::uuid IS NULL OR actor_id = $2)
  AND ($3::text IS NULL OR subject_type = $3)
  AND ($4::uuid IS NULL OR subject_id = $4)
  AND ($5::text IS NULL OR action = $5)
  AND ($6::text IS NULL OR action LIKE $6)
  AND ($7::timestamptz IS NULL OR created_at >= $7)
  AND ($8::timestamptz IS NULL OR created_at < $8)
"""
# An agent's own entries: a plain OR of two indexed columns (audit_log_actor, audit_log_owner),
# so the planner never has to scan other agents' rows. Admins ($1 is NULL) read every row.
OWN = "WHERE (actor_id = $1 OR owner_id = $1)"
EVERY = "WHERE $1::uuid IS NULL"
LIST_OWN_AUDIT = f"""
SELECT {AUDIT_COLUMNS}, count(*) OVER () AS total_count
FROM audit_log {OWN} {AUDIT_FILTERS}
ORDER BY id DESC
LIMIT $9 OFFSET $10
"""  # noqa: S608 - column list and WHERE are module constants, values are bound
COUNT_OWN_AUDIT = f"SELECT count(*) FROM audit_log {OWN} {AUDIT_FILTERS}"  # noqa: S608
LIST_ALL_AUDIT = f"""
SELECT {AUDIT_COLUMNS}, count(*) OVER () AS total_count
FROM audit_log {EVERY} {AUDIT_FILTERS}
ORDER BY id DESC
LIMIT $9 OFFSET $10
"""  # noqa: S608
COUNT_ALL_AUDIT = f"SELECT count(*) FROM audit_log {EVERY} {AUDIT_FILTERS}"  # noqa: S608


async def list_entries(
    conn: Connection | asyncpg.Pool, where: AuditFilter, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of audit rows, newest first, and how many match."""
    args = where.args()
    if where.viewer is None:
        listing, counting = LIST_ALL_AUDIT, COUNT_ALL_AUDIT
    else:
        listing, counting = LIST_OWN_AUDIT, COUNT_OWN_AUDIT
    rows = await conn.fetch(listing, *args, limit, offset)
    total = int(rows[0]["total_count"]) if rows else int(await conn.fetchval(counting, *args))
    items = []
    for r in rows:
        d = dict(r)
        d.pop("total_count", None)
        items.append(d)
    return items, total


# Rows created before the cutoff, a bounded batch at a time (the BRIN index on created_at).
PRUNE_AUDIT = """
WITH old AS (SELECT id FROM audit_log WHERE created_at < $1 LIMIT $2)
DELETE FROM audit_log a USING old WHERE a.id = old.id
"""


async def prune(
    conn: Connection | asyncpg.Pool,
    *,
    before: datetime,
    batch: int = 5_000,
    max_batches: int = 20,
) -> int:
    """Delete audit rows created before ``before``; returns how many (bounded per call)."""
    return await delete_in_batches(conn, PRUNE_AUDIT, before, batch=batch, max_batches=max_batches)
