"""Helpers shared by test folders (the fixtures themselves are in tests/fixtures/)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from ordinaut.config import load_settings
from ordinaut.store import db, work
from ordinaut.store.rows import SlotTask

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fresh_database(server_url: str, name: str) -> str:
    """A new, migrated database ``name`` on the test server; returns its URL.

    Real processes get a database of their own so they never race the truncating fixtures.
    """
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = server_url.replace("/postgres?", f"/{name}?")
    settings = load_settings({}, database_url=url, migrations_dir=str(REPO / "migrations"))
    c = await db.connect(settings)
    try:
        await db.migrate(c, settings.migrations_dir)
    finally:
        await c.close()
    return url


async def eventually(
    check: Callable[[], Awaitable[Any]], within_s: float, what: str, logs: Callable[[], str]
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the processes' logs."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


async def queue_runs(
    pool: asyncpg.Pool,
    task: dict[str, Any],
    *,
    at: datetime,
    n: int = 1,
    trigger: str = "run_now",
) -> list[uuid.UUID]:
    """``n`` runs of ``task`` due at ``at`` (as "run now" queues them); returns their ids."""
    slots = []
    for _ in range(n):
        run_id = uuid.uuid4()
        slots.append(
            work.NewSlot.for_task(
                SlotTask.from_row(task),
                run_id=run_id,
                slot=f"manual:{run_id}",
                trigger=trigger,
                scheduled_for=at,
            )
        )
    async with pool.acquire() as conn:
        await work.materialize(conn, slots, now=at)
    return [s.run_id for s in slots]
