"""Agent secrets (ciphertext only; SecretBox does the cryptography)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.store.db import Connection

UPSERT = """
INSERT INTO agent_secrets (tenant_id, name, ciphertext, created_at, updated_at)
VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (tenant_id, name) DO UPDATE SET ciphertext = excluded.ciphertext,
    updated_at = excluded.updated_at
RETURNING (xmax = 0) AS created
"""
LIST = """
SELECT name, created_at, updated_at FROM agent_secrets WHERE tenant_id = $1 ORDER BY name
"""
DELETE = "DELETE FROM agent_secrets WHERE tenant_id = $1 AND name = $2 RETURNING name"
FETCH = "SELECT name, ciphertext FROM agent_secrets WHERE tenant_id = $1 AND name = ANY($2)"


async def put(
    conn: Connection, tenant_id: UUID, name: str, ciphertext: bytes, now: datetime
) -> bool:
    """Store or replace; True when it was created."""
    return bool(await conn.fetchval(UPSERT, tenant_id, name, ciphertext, now))


async def names(conn: Connection | asyncpg.Pool, tenant_id: UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LIST, tenant_id)]


async def delete(conn: Connection, tenant_id: UUID, name: str) -> bool:
    return await conn.fetchval(DELETE, tenant_id, name) is not None


async def fetch(
    conn: Connection | asyncpg.Pool, tenant_id: UUID, wanted: Iterable[str]
) -> dict[str, bytes]:
    rows = await conn.fetch(FETCH, tenant_id, list(wanted))
    return {r["name"]: bytes(r["ciphertext"]) for r in rows}
