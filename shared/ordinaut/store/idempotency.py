"""Idempotency keys for POST /tasks: a retried request gets the first response back."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

SELECT_KEY = """
SELECT request_hash, status_code, response FROM idempotency_keys
WHERE agent_id = $1 AND key = $2
"""
INSERT_KEY = """
INSERT INTO idempotency_keys (agent_id, key, request_hash, status_code, response, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""


async def lookup(
    conn: asyncpg.Connection, agent_id: UUID, key: str
) -> tuple[bytes, int, Any] | None:
    row = await conn.fetchrow(SELECT_KEY, agent_id, key)
    if row is None:
        return None
    return bytes(row["request_hash"]), int(row["status_code"]), row["response"]


async def remember(
    conn: asyncpg.Connection,
    agent_id: UUID,
    key: str,
    *,
    request_hash: bytes,
    status_code: int,
    response: Any,
    now: datetime,
) -> None:
    """Store the response in the creating transaction; a concurrent twin hits the key."""
    await conn.execute(INSERT_KEY, agent_id, key, request_hash, status_code, response, now)
