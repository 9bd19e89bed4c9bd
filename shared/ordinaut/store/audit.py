"""Audit log: one row per mutation, written in the mutation's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

INSERT_AUDIT = """
INSERT INTO audit_log (actor_id, action, subject_type, subject_id, details, request_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""


async def record(
    conn: asyncpg.Connection,
    *,
    actor_id: UUID | None,
    action: str,
    subject_type: str,
    subject_id: UUID | None,
    now: datetime,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    """Append one audit row (call inside the mutation's transaction)."""
    await conn.execute(
        INSERT_AUDIT, actor_id, action, subject_type, subject_id, details or {}, request_id, now
    )
