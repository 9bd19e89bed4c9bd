"""Forward-only migrations: applied in order under a lock, recorded, and a no-op the second time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from fixtures.database import MIGRATED_ROWS, emptied_tables

from ordinaut.config import Settings
from ordinaut.store import db

REPO = Path(__file__).resolve().parents[2]
VERSIONS = [p.stem for p in db.migration_files(REPO / "migrations")]


def with_database(url: str, name: str) -> str:
    """The same server URL pointed at another database (works for host and unix-socket URLs)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
async def fresh(base_settings: Settings) -> AsyncIterator[Settings]:
    """Settings for a brand-new, empty database on the session's server, dropped afterwards."""
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base_settings.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"', timeout=120)
        yield base_settings.replace(database_url=with_database(base_settings.database_url, name))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timeout=120)
        await admin.close()


async def applied_versions(settings: Settings) -> list[str]:
    conn = await db.connect(settings)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    return [r["version"] for r in rows]


def test_there_are_migrations_in_order() -> None:
    assert VERSIONS
    assert sorted(VERSIONS) == VERSIONS
    assert all(v[:4].isdigit() and v[4] == "_" for v in VERSIONS)


async def test_migrate_applies_everything_once_then_nothing(fresh: Settings) -> None:
    conn = await db.connect(fresh)
    try:
        assert await db.migrate(conn, fresh.migrations_dir) == VERSIONS
        assert await db.migrate(conn, fresh.migrations_dir) == []
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    finally:
        await conn.close()
    assert await applied_versions(fresh) == VERSIONS
    assert {"agents", "tasks", "runs", "due_work", "schema_migrations"} <= tables


async def test_the_tests_empty_every_table_but_those_the_migrations_fill(fresh: Settings) -> None:
    """The fixtures' TRUNCATE list comes from the catalogue: every public table but the ones
    holding rows the migrations wrote, which a test must not lose."""
    conn = await db.connect(fresh)
    try:
        await db.migrate(conn, fresh.migrations_dir)
        tables = [
            r[0]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        filled = {t for t in tables if await conn.fetchval(f'SELECT EXISTS (SELECT FROM "{t}")')}
        assert filled == set(MIGRATED_ROWS)
        assert set(await emptied_tables(conn)) == set(tables) - filled
        await conn.execute("CREATE TABLE a_later_table (id int)")
        assert "a_later_table" in await emptied_tables(conn)
    finally:
        await conn.close()


async def test_concurrent_migrators_apply_each_file_once(fresh: Settings) -> None:
    conns = [await db.connect(fresh) for _ in range(3)]
    try:
        results = await asyncio.gather(*(db.migrate(c, fresh.migrations_dir) for c in conns))
    finally:
        for c in conns:
            await c.close()
    # The advisory lock serializes them: exactly one applies everything, the others nothing.
    assert sorted(results, key=len) == [[], [], VERSIONS]
    assert await applied_versions(fresh) == VERSIONS


async def test_a_migration_edited_after_it_was_applied_is_refused(
    fresh: Settings, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "migrations", migrations)
    conn = await db.connect(fresh)
    try:
        await db.migrate(conn, migrations)
        first = db.migration_files(migrations)[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(RuntimeError, match=f"migration {first.stem} changed"):
            await db.migrate(conn, migrations)
    finally:
        await conn.close()


async def test_a_new_file_is_applied_after_the_old_ones(fresh: Settings, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "migrations", migrations)
    conn = await db.connect(fresh)
    try:
        await db.migrate(conn, migrations)
        (migrations / "9999_extra.sql").write_text("CREATE TABLE extra_table (id int);\n")
        assert await db.migrate(conn, migrations) == ["9999_extra"]
        assert await conn.fetchval("SELECT to_regclass('extra_table') IS NOT NULL")
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_behind(fresh: Settings, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "migrations", migrations)
    (migrations / "9999_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    conn = await db.connect(fresh)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await db.migrate(conn, migrations)
        assert not await conn.fetchval("SELECT to_regclass('half_done') IS NOT NULL")
    finally:
        await conn.close()
    assert await applied_versions(fresh) == VERSIONS


async def test_an_empty_directory_is_an_error(fresh: Settings, tmp_path: Path) -> None:
    conn = await db.connect(fresh)
    try:
        with pytest.raises(RuntimeError, match="no migrations"):
            await db.migrate(conn, tmp_path)
    finally:
        await conn.close()


def ordinaut(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDINAUT_")}
    env["ORDINAUT_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "ordinaut.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_ordinaut_migrate_twice_is_a_no_op(fresh: Settings) -> None:
    first = await asyncio.to_thread(ordinaut, fresh, "migrate")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"applied {v}" for v in VERSIONS]
    second = await asyncio.to_thread(ordinaut, fresh, "migrate")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "database is up to date\n"
    assert await applied_versions(fresh) == VERSIONS


async def test_ordinaut_migrate_reports_an_edited_file_in_one_line(
    fresh: Settings, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "migrations", migrations)
    args = ("migrate", "--migrations-dir", str(migrations))
    assert (await asyncio.to_thread(ordinaut, fresh, *args)).returncode == 0
    first = db.migration_files(migrations)[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    result = await asyncio.to_thread(ordinaut, fresh, *args)
    assert result.returncode == 1
    assert result.stderr.startswith(f"ordinaut: error: migration {first.stem} changed")
    assert "Traceback" not in result.stderr


async def test_ordinaut_agents_create_prints_a_secret_that_verifies(fresh: Settings) -> None:
    import json

    from ordinaut.auth import SCOPES, verify_secret

    assert (await asyncio.to_thread(ordinaut, fresh, "migrate")).returncode == 0
    result = await asyncio.to_thread(
        ordinaut, fresh, "agents", "create", "ops", "--admin", "--json"
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["name"] == "ops"
    assert created["scopes"] == list(SCOPES)
    conn = await db.connect(fresh)
    try:
        stored = await conn.fetchval(
            "SELECT secret_hash FROM agents WHERE id = $1", uuid.UUID(created["agent_id"])
        )
    finally:
        await conn.close()
    assert stored != created["agent_secret"]
    assert verify_secret(created["agent_secret"], stored)


RUNS_TASK_SCHED = (
    "CREATE INDEX runs_task_sched ON public.runs USING btree (task_id, scheduled_for DESC, id)"
)


async def _runs_indexes(conn: asyncpg.Connection) -> dict[str, tuple[str, bool]]:
    rows = await conn.fetch(
        """
        SELECT c.relname, pg_get_indexdef(c.oid) AS def, i.indisvalid
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'runs'::regclass
        """
    )
    return {r["relname"]: (r["def"], r["indisvalid"]) for r in rows}


async def _migrated_before(settings: Settings, tmp_path: Path, version: str) -> Path:
    """A database migrated up to (not including) ``version``; the directory with every file."""
    before = tmp_path / "before"
    before.mkdir()
    for path in db.migration_files(REPO / "migrations"):
        if path.stem < version:
            shutil.copy(path, before)
    conn = await db.connect(settings)
    try:
        await db.migrate(conn, before)
    finally:
        await conn.close()
    return REPO / "migrations"


async def test_0021_replaces_the_task_time_index_with_the_page_index(
    fresh: Settings, tmp_path: Path
) -> None:
    every = await _migrated_before(fresh, tmp_path, "0021")
    conn = await db.connect(fresh)
    try:
        assert "runs_task_time" in await _runs_indexes(conn)
        assert await db.migrate(conn, every) == [v for v in VERSIONS if v >= "0021"]
        indexes = await _runs_indexes(conn)
    finally:
        await conn.close()
    assert indexes["runs_task_sched"] == (RUNS_TASK_SCHED, True)
    assert "runs_task_time" not in indexes


async def test_0021_keeps_an_index_built_beforehand_and_rebuilds_a_failed_one(
    fresh: Settings, tmp_path: Path
) -> None:
    """On a large table an operator builds the index CONCURRENTLY before upgrading; the
    migration keeps it. A concurrent build that failed leaves an invalid index of that name,
    which the migration must not take for the real one."""
    every = await _migrated_before(fresh, tmp_path, "0021")
    conn = await db.connect(fresh)
    try:
        await conn.execute(
            "CREATE INDEX CONCURRENTLY runs_task_sched ON runs (task_id, scheduled_for DESC, id)"
        )
        built = await conn.fetchval("SELECT to_regclass('runs_task_sched')::oid")
        await db.migrate(conn, every)
        assert await conn.fetchval("SELECT to_regclass('runs_task_sched')::oid") == built
        assert (await _runs_indexes(conn))["runs_task_sched"] == (RUNS_TASK_SCHED, True)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "prepare",
    [
        # a unique build over one task's two runs fails and leaves the index invalid
        "CREATE UNIQUE INDEX CONCURRENTLY runs_task_sched ON runs (task_id)",
        "CREATE INDEX runs_task_sched ON runs (task_id, scheduled_for)",
    ],
    ids=["failed", "another"],
)
async def test_0021_rebuilds_an_index_of_its_name_that_is_invalid_or_another(
    fresh: Settings, tmp_path: Path, prepare: str
) -> None:
    every = await _migrated_before(fresh, tmp_path, "0021")
    conn = await db.connect(fresh)
    try:
        agent, task = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO agents (id, name, scopes, secret_hash, created_at, updated_at) "
            "VALUES ($1, 'a', ARRAY['admin'], 'x', now(), now())",
            agent,
        )
        await conn.execute(
            "INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, timezone, "
            "payload, status, created_at, updated_at) "
            "VALUES ($1, $2, 't', 'cron', '0 8 * * *', 'UTC', '{}', 'paused', now(), now())",
            task,
            agent,
        )
        await conn.execute(
            "INSERT INTO runs (id, task_id, owner_id, slot, trigger, scheduled_for, status, "
            "attempt, idempotency_key, started_at, finished_at, created_at, updated_at) "
            "SELECT u, $1, $2, 'manual:' || u, 'run_now', now(), 'succeeded', 1, u::text, "
            "now(), now(), now(), now() "
            "FROM (SELECT gen_random_uuid() AS u FROM generate_series(1, 2)) AS s",
            task,
            agent,
        )
        with contextlib.suppress(asyncpg.UniqueViolationError):
            await conn.execute(prepare)
        assert (await _runs_indexes(conn))["runs_task_sched"] != (RUNS_TASK_SCHED, True)
        await db.migrate(conn, every)
        assert (await _runs_indexes(conn))["runs_task_sched"] == (RUNS_TASK_SCHED, True)
        assert await conn.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", task) == 2
    finally:
        await conn.close()
