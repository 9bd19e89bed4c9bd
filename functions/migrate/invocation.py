"""Migrate invocations: apply ``migrations/`` (on every deploy) or create an admin agent.

Terraform invokes ``{"action": "migrate"}`` right after RDS Proxy is created, when its target may
take minutes to become available: connecting is retried with backoff for as long as the
invocation has (``connect_window_s``: its remaining time less ``RESERVE_S`` for the migrations
themselves).
``create-admin`` returns the agent's one-time secret and logs only its id.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import asyncpg

from functions._runtime import CONNECTION_ERRORS
from ordinaut.auth import SCOPES
from ordinaut.clock import DatabaseClock
from ordinaut.config import Settings
from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline import PipelineLimits, ToolRegistry
from ordinaut.store import agents, db, tasks
from ordinaut.taskdefs import run_worst_case_s
from ordinaut.toolbox import build_registry

log = logging.getLogger("ordinaut.migrate")

CONNECT_WITHIN_S = 90.0  # without a Lambda context (direct calls)
RESERVE_S = 20.0  # of the invocation's time, kept for the migrations after connecting
MIN_WINDOW_S = 1.0
FIRST_PAUSE_S = 1.0  # doubled after every failed attempt, up to MAX_PAUSE_S
MAX_PAUSE_S = 10.0
# A proxy that has just been created may also reject logins until it can read its secret.
RETRYABLE: tuple[type[Exception], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.InvalidAuthorizationSpecificationError,
)
MAX_NAME = 200


class UnknownAction(ValueError):
    """The event asks for something this function does not do."""


def connect_window_s(remaining_s: float) -> float:
    """How long to keep trying to connect in an invocation with ``remaining_s`` left."""
    return max(MIN_WINDOW_S, remaining_s - RESERVE_S)


async def connect(settings: Settings, *, within_s: float = CONNECT_WITHIN_S) -> asyncpg.Connection:
    """A connection, retrying with backoff while the database is not reachable yet."""
    deadline = time.monotonic() + within_s
    pause = FIRST_PAUSE_S
    while True:
        try:
            return await db.connect(settings)
        except RETRYABLE as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.warning(
                "database not reachable yet; retrying",
                extra={"error": repr(exc), "retry_in_s": round(min(pause, left), 1)},
            )
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, MAX_PAUSE_S)


async def run_action(
    settings: Settings, event: Any, *, within_s: float = CONNECT_WITHIN_S
) -> dict[str, Any]:
    """Do what ``event["action"]`` asks; raises UnknownAction for anything else."""
    action = event.get("action") if isinstance(event, dict) else None
    if action == "migrate":
        return await migrate(settings, within_s=within_s)
    if action == "create-admin":
        return await create_admin(settings, event.get("name"), within_s=within_s)
    raise UnknownAction(f"unknown action {action!r}: expected 'migrate' or 'create-admin'")


async def migrate(settings: Settings, *, within_s: float) -> dict[str, Any]:
    """Apply pending migrations; returns the versions applied and the schema version."""
    conn = await connect(settings, within_s=within_s)
    try:
        applied = await db.migrate(conn, settings.migrations_dir)
        # tasks written before run bounds existed: a Lambda worker leases by bound
        bounded = await backfill_run_bounds(
            conn, settings=settings, registry=build_registry(settings)
        )
    finally:
        await conn.close()
    version = db.migration_files(settings.migrations_dir)[-1].stem
    log.info(
        "migrations applied",
        extra={"applied": applied, "schema_version": version, "run_bounds_set": bounded},
    )
    return {
        "action": "migrate",
        "applied": applied,
        "schema_version": version,
        "run_bounds_set": bounded,
    }


async def create_admin(settings: Settings, name: Any, *, within_s: float) -> dict[str, Any]:
    """A new agent with every scope; returns its id and one-time secret."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"create-admin needs a name of 1 to {MAX_NAME} characters")
    conn = await connect(settings, within_s=within_s)
    try:
        clock = DatabaseClock()  # one clock: the database's (docs/guarantees.md, "One clock")
        await db.sync_clock(conn, clock)
        agent, secret = await agents.create_agent(
            conn, name=name, scopes=list(SCOPES), now=clock.now()
        )
    finally:
        await conn.close()
    log.info("admin agent created", extra={"agent_id": str(agent.id)})
    return {
        "agent_id": str(agent.id),
        "agent_secret": secret,
        "name": agent.name,
        "scopes": list(agent.scopes),
    }


BACKFILL_BATCH = 500


async def backfill_run_bounds(
    conn: asyncpg.Connection, *, settings: Settings, registry: ToolRegistry
) -> int:
    """Give tasks written before run bounds existed theirs (their pipeline's worst case, at
    most ORDINAUT_MAX_RUN_DURATION_S, which is what they counted as until now); returns how
    many. A stored payload that no longer compiles keeps NULL (its runs fail anyway)."""
    limits = PipelineLimits.from_settings(settings)
    done, after = 0, uuid.UUID(int=0)
    while rows := await tasks.unbounded_tasks(conn, after, BACKFILL_BATCH):
        ids, bounds = [], []
        for row in rows:
            try:
                worst = run_worst_case_s(row["payload"], registry=registry, limits=limits)
            except InvalidPipeline:
                continue
            ids.append(row["id"])
            bounds.append(min(worst, settings.max_run_duration_s))
        await tasks.set_run_bounds(conn, ids, bounds)
        done += len(ids)
        after = rows[-1]["id"]
    return done
