"""Connection pools, JSON codecs and forward-only migrations."""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from ordinaut.clock import DatabaseClock
from ordinaut.config import Settings

log = logging.getLogger("ordinaut.db")

MIGRATION_LOCK_ID = 0x4F52_4449  # "ORDI": one advisory lock serializes concurrent migrators

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
SELECT_APPLIED = "SELECT version, checksum FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)"
SELECT_DB_NOW = "SELECT clock_timestamp()"

# What the store's functions take: a connection of their own, or one borrowed from a pool
# (``async with pool.acquire() as conn`` yields a proxy that forwards to the connection).
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


@asynccontextmanager
async def connection(db: asyncpg.Pool | Connection) -> AsyncIterator[Connection]:
    """A connection of the pool ``db`` for the block, or ``db`` itself when it is one (a
    caller's, whose transaction the block then joins)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


def one_row(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row of a statement that always returns one (an aggregate, INSERT ... RETURNING
    without ON CONFLICT): None there is a bug, said as such instead of a TypeError later."""
    if row is None:
        raise RuntimeError("a statement that always returns a row returned none")
    return row


async def delete_in_batches(
    conn: Connection | asyncpg.Pool, sql: str, *args: Any, batch: int, max_batches: int
) -> int:
    """Run ``sql``, a DELETE of at most ``batch`` rows (its last parameter), until a pass
    removes fewer or ``max_batches`` passes ran; returns how many rows went (housekeeping:
    short transactions, bounded work per call)."""
    total = 0
    for _ in range(max_batches):
        removed = int((await conn.execute(sql, *args, batch)).split()[-1])
        total += removed
        if removed < batch:
            break
    return total


class Where:
    """A WHERE clause built from constant SQL fragments (``{}`` where a value goes), each value
    bound as the next parameter: list queries with only the predicates a request gives."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def bind(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, fragment: str, *values: Any) -> None:
        self.parts.append(fragment.format(*(self.bind(v) for v in values)))

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts) or "true"


def keyset_page(
    columns: str,
    table: str,
    where: Where,
    order: str,
    *,
    limit: int,
    offset: int,
    after: tuple[Any, Any] | None,
) -> str:
    """A page of ``table`` in (``order`` DESC, id) order: by ``offset``, or right after the
    (``order``, id) of ``after`` (a keyset cursor). The keyset page is two index ranges, the
    rest of ``after``'s instant by id and everything older, merged: a single
    "order <= x AND (order < x OR id > y)" range would read every row tied on ``order``
    before the first it keeps (100k tasks loaded in one statement share their created_at)."""
    lim = where.bind(limit)
    if after is None:
        return (
            f"SELECT {columns} FROM {table} WHERE {where.sql} "  # noqa: S608 - fragments
            f"ORDER BY {order} DESC, id LIMIT {lim} OFFSET {where.bind(offset)}"
        )
    conditions = where.sql
    at, last = where.bind(after[0]), where.bind(after[1])
    return (
        f"SELECT * FROM ("  # noqa: S608 - fragments
        f"(SELECT {columns} FROM {table} WHERE {conditions} AND {order} = {at} AND id > {last} "
        f"ORDER BY id LIMIT {lim}) UNION ALL "
        f"(SELECT {columns} FROM {table} WHERE {conditions} AND {order} < {at} "
        f"ORDER BY {order} DESC, id LIMIT {lim})"
        f") AS keyset ORDER BY {order} DESC, id LIMIT {lim}"
    )


def like_literal(text: str) -> str:
    """``text`` matched literally by LIKE (its ``%``, ``_`` and ``\\`` escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_like(sql: str) -> str:
    """SQL for the LIKE pattern of the topic glob that ``sql`` evaluates to: ``*`` matches any
    run of characters, everything else (``%``, ``_``, ``\\`` included) only itself."""
    return rf"replace(replace(replace(replace({sql}, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')"


def json_text(value: Any) -> str | None:
    """JSON text for a ``text[]`` parameter cast to jsonb in SQL (None stays SQL NULL)."""
    return None if value is None else _dumps(value)


def _dumps(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    if b"e+" in text and _BIG_FLOAT.search(text):
        text = orjson.dumps(_exact_big_floats(value), option=orjson.OPT_NON_STR_KEYS)
    return text.decode()


# jsonb stores numbers as numeric, which drops an exponent: 1.5e+16 comes back as
# 15000000000000000, an integer to every JSON reader (and 5.964914637738755e+16 as an integer
# that no longer equals the float sent). Floats that orjson writes with an exponent (|x| >= 1e16)
# are written as their exact decimal with a fraction instead, which jsonb keeps, so they read
# back as the same float. Only values whose JSON text has such a number pay for the walk.
_BIG_FLOAT = re.compile(rb"[0-9]e\+")
_EXPONENT_FROM = 1e16


def _exact_big_floats(value: Any) -> Any:
    if isinstance(value, float):
        # Every double this large is a whole number, so the decimal is exact.
        big = math.isfinite(value) and abs(value) >= _EXPONENT_FROM
        return orjson.Fragment(f"{value:.1f}") if big else value
    if isinstance(value, dict):
        return {k: _exact_big_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact_big_floats(v) for v in value]
    return value


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(
            typ, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


async def connect(settings: Settings) -> asyncpg.Connection:
    """One connection with Ordinaut's codecs (CLI commands, LISTEN)."""
    conn = await asyncpg.connect(
        settings.database_url,
        timeout=settings.db_connect_timeout_s,
        command_timeout=settings.db_command_timeout_s,
    )
    await _init_connection(conn)
    return conn


class FastFailPool(asyncpg.Pool):
    """A pool whose ``acquire`` gives up after ``acquire_timeout`` seconds when every
    connection is busy or the server is gone, so callers answer 503 quickly instead of hanging."""

    acquire_timeout: float | None = None

    def acquire(self, *, timeout: float | None = None) -> Any:
        free = getattr(self, "_queue", None)  # asyncpg's queue of free connection holders
        if timeout is None and free is not None and free.qsize():
            # A free connection holder is waiting: taking it never blocks, so no timer. With a
            # timeout asyncpg runs the acquire in a task of its own under wait_for, which cost
            # more than the query itself on a short request. A holder without a connection
            # still connects under the pool's connect timeout.
            return super().acquire()
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def _reset_connection(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset costs a round trip per release (UNLISTEN *, RESET ALL, ...).
    # Pool connections never change session state here (LISTEN and advisory locks use their
    # own connections), so only an abandoned transaction needs undoing.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(
    settings: Settings,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
    acquire_timeout: float | None = None,
) -> asyncpg.Pool:
    """A pool with JSON codecs; fails fast (connect timeout) when the database is down."""
    if not settings.database_url:
        raise RuntimeError("ORDINAUT_DATABASE_URL is not set (ordinaut dev sets it for you)")
    pool = FastFailPool(
        settings.database_url,
        min_size=settings.db_pool_min if min_size is None else min_size,
        max_size=settings.db_pool_max if max_size is None else max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_reset_connection,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        timeout=settings.db_connect_timeout_s,
        command_timeout=settings.db_command_timeout_s,
    )
    pool.acquire_timeout = acquire_timeout
    try:
        await pool
    except BaseException:
        pool.terminate()
        raise
    return pool


async def sync_clock(conn: Connection | asyncpg.Pool, clock: DatabaseClock) -> None:
    """Measure the database clock so ``clock.now()`` follows it without I/O."""
    sent = time.monotonic()
    db_now = await conn.fetchval(SELECT_DB_NOW)
    clock.sync(db_now, sent, time.monotonic())


def migration_files(directory: str | Path) -> list[Path]:
    """``NNNN_name.sql`` files in version order."""
    return sorted(p for p in Path(directory).glob("*.sql") if p.name[:4].isdigit())


async def migrate(conn: Connection, directory: str | Path) -> list[str]:
    """Apply pending migrations in order under an advisory lock; returns the versions applied.

    Running it twice is a no-op. An applied file whose text changed is an error: migrations are
    forward-only, so a fix is a new file.
    """
    files = migration_files(directory)
    if not files:
        raise RuntimeError(f"no migrations found in {directory}")
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(CREATE_MIGRATIONS_TABLE)
        applied = {r["version"]: r["checksum"] for r in await conn.fetch(SELECT_APPLIED)}
        for path in files:
            version = path.stem
            text = path.read_text()
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if version in applied:
                if applied[version] != checksum:
                    raise RuntimeError(
                        f"migration {version} changed after it was applied; add a new file instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(text)
                await conn.execute(INSERT_APPLIED, version, checksum)
            log.info("applied migration", extra={"version": version})
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now
