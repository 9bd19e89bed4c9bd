"""Shared fixtures: real PostgreSQL and Redis (embedded), migrated once, cleaned per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings, load_settings
from ordinaut.embedded import EmbeddedPostgres, EmbeddedRedis
from ordinaut.secrets import new_key
from ordinaut.store import db

REPO = Path(__file__).resolve().parents[1]
MUTABLE_TABLES = (
    "agent_secrets, events, idempotency_keys, scheduler_state, worker_heartbeats, audit_log, outbox, due_work, runs, "
    "tasks, agent_tokens, agents"
)


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, str]]:
    """External servers when ORDINAUT_TEST_DATABASE_URL is set, else embedded ones."""
    ext_db = os.environ.get("ORDINAUT_TEST_DATABASE_URL")
    ext_redis = os.environ.get("ORDINAUT_TEST_REDIS_URL")
    if ext_db and ext_redis:
        yield {"database_url": ext_db, "redis_url": ext_redis}
        return
    base = Path(tempfile.mkdtemp(prefix="ordinaut-test-"))
    base.chmod(0o755)
    pg = EmbeddedPostgres(base / "pg")
    redis = EmbeddedRedis(base / "redis")
    try:
        url = pg.start()
        redis_url = redis.start()
        yield {"database_url": url, "redis_url": redis_url}
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def base_settings(servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        {},
        database_url=servers["database_url"],
        redis_url=servers["redis_url"],
        home=str(tmp_path_factory.mktemp("home")),
        migrations_dir=str(REPO / "migrations"),
        log_json=False,
        secrets_key=new_key(),
    )


@pytest.fixture(scope="session")
async def migrated(base_settings: Settings) -> str:
    conn = await db.connect(base_settings)
    try:
        await db.migrate(conn, base_settings.migrations_dir)
    finally:
        await conn.close()
    return base_settings.database_url


@pytest.fixture(scope="session")
async def session_pool(base_settings: Settings, migrated: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(base_settings, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
async def pool(session_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The session pool over freshly emptied tables."""
    await session_pool.execute(f"TRUNCATE {MUTABLE_TABLES} RESTART IDENTITY CASCADE")
    return session_pool


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
