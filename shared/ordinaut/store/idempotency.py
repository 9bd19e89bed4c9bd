"""Idempotency keys for POST /tasks: a retried request gets the first response back."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.store.db import Connection, delete_in_batches

SELECT_KEY = """
SELECT request_hash, status_code, response FROM idempotency_keys
WHERE agent_id = $1 AND key = $2 AND created_at > $3
"""
# an expired key makes way for the new request (a live one stays: its twin conflicts on insert)
FORGET_EXPIRED_KEY = """
DELETE FROM idempotency_keys WHERE agent_id = $1 AND key = $2 AND created_at <= $3
"""
PRUNE_KEYS = """
DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys WHERE created_at <= $1 LIMIT $2
))
"""
INSERT_KEY = """
INSERT INTO idempotency_keys (agent_id, key, request_hash, status_code, response, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""


async def lookup(
    conn: Connection, agent_id: UUID, key: str, *, expired_before: datetime
) -> tuple[bytes, int, Any] | None:
    """The stored response of a key used after ``expired_before`` (None: new or expired)."""
    row = await conn.fetchrow(SELECT_KEY, agent_id, key, expired_before)
    if row is None:
        return None
    return bytes(row["request_hash"]), int(row["status_code"]), row["response"]


async def remember(
    conn: Connection,
    agent_id: UUID,
    key: str,
    *,
    request_hash: bytes,
    status_code: int,
    response: Any,
    now: datetime,
    expired_before: datetime,
) -> None:
    """Store the response in the creating transaction; a concurrent twin hits the key."""
    await conn.execute(FORGET_EXPIRED_KEY, agent_id, key, expired_before)
    await conn.execute(INSERT_KEY, agent_id, key, request_hash, status_code, response, now)


async def prune(
    conn: Connection | asyncpg.Pool,
    *,
    expired_before: datetime,
    batch: int = 5_000,
    max_batches: int = 20,
) -> int:
    """Delete keys used before ``expired_before``; returns how many (bounded per call)."""
    return await delete_in_batches(
        conn, PRUNE_KEYS, expired_before, batch=batch, max_batches=max_batches
    )
