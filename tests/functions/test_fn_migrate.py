"""The migrate Lambda: migrations on deploy (retrying while the proxy warms up), first admin."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from fn_support import FakeContext, HandlerLoader, call

from functions.migrate import invocation
from functions.migrate.invocation import UnknownAction
from ordinaut import auth
from ordinaut.config import Settings
from ordinaut.store import db

pytestmark = pytest.mark.cloud


@pytest.fixture
async def empty_database(
    pool: asyncpg.Pool, servers: dict[str, str], lambda_env: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """A new, empty database on the test server, as ORDINAUT_DATABASE_URL."""
    name = f"fn_migrate_{uuid.uuid4().hex[:12]}"
    await pool.execute(f'CREATE DATABASE "{name}"', timeout=120)
    url = urlunsplit(urlsplit(servers["database_url"])._replace(path=f"/{name}"))
    lambda_env.setenv("ORDINAUT_DATABASE_URL", url)
    yield url
    await pool.execute(f'DROP DATABASE "{name}" WITH (FORCE)', timeout=120)


async def test_migrate_applies_every_migration_once(
    load_handler: HandlerLoader, empty_database: str, settings: Settings
) -> None:
    versions = [p.stem for p in db.migration_files(settings.migrations_dir)]
    migrate = await load_handler("migrate")
    first = await call(migrate.handler, {"action": "migrate"}, FakeContext())
    assert first == {
        "action": "migrate",
        "applied": versions,
        "schema_version": versions[-1],
        "run_bounds_set": 0,
    }
    again = await call(migrate.handler, {"action": "migrate"}, FakeContext())
    assert again == {
        "action": "migrate",
        "applied": [],
        "schema_version": versions[-1],
        "run_bounds_set": 0,
    }


async def test_create_admin_returns_a_working_secret_and_never_logs_it(
    load_handler: HandlerLoader,
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    migrate = await load_handler("migrate")
    with caplog.at_level(logging.DEBUG):
        created = await call(
            migrate.handler, {"action": "create-admin", "name": "admin"}, FakeContext()
        )
    secret = created["agent_secret"]
    assert set(created) == {"agent_id", "agent_secret", "name", "scopes"}
    assert created["scopes"] == list(auth.SCOPES)
    row = await pool.fetchrow(
        "SELECT name, scopes, secret_hash FROM agents WHERE id = $1", uuid.UUID(created["agent_id"])
    )
    assert row["name"] == "admin"
    assert "admin" in row["scopes"]
    assert auth.verify_secret(secret, row["secret_hash"])
    records = [json.dumps(vars(r), default=str) for r in caplog.records]
    assert any(created["agent_id"] in r for r in records)
    assert not any(secret in r for r in records)
    printed = capsys.readouterr()
    assert secret not in printed.out + printed.err


@pytest.mark.parametrize(
    "event",
    [{"action": "drop-everything"}, {}, ["migrate"], {"action": "create-admin", "name": ""}],
)
async def test_anything_else_is_an_error(load_handler: HandlerLoader, event: Any) -> None:
    migrate = await load_handler("migrate")
    with pytest.raises(ValueError, match="unknown action|create-admin needs a name") as raised:
        await call(migrate.handler, event, FakeContext())
    if isinstance(raised.value, UnknownAction):
        assert "expected 'migrate' or 'create-admin'" in str(raised.value)


async def test_connect_retries_while_the_database_warms_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, migrated: str
) -> None:
    real_connect = db.connect
    attempts: list[int] = []

    async def flaky(s: Settings) -> asyncpg.Connection:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("proxy not ready")
        return await real_connect(s)

    monkeypatch.setattr(invocation.db, "connect", flaky)
    monkeypatch.setattr(invocation, "FIRST_PAUSE_S", 0.01)
    conn = await invocation.connect(settings, within_s=60)
    await conn.close()
    assert len(attempts) == 3


async def test_connect_gives_up_after_its_window() -> None:
    settings = Settings(
        database_url="postgresql://u:p@127.0.0.1:1/ordinaut", db_connect_timeout_s=1.0
    )
    with pytest.raises(ConnectionRefusedError):
        await invocation.connect(settings, within_s=0.2)


async def test_first_apply_waits_for_a_proxy_that_comes_up_late(
    load_handler: HandlerLoader, monkeypatch: pytest.MonkeyPatch, migrated: str
) -> None:
    """Through the handler: the proxy refuses, then rejects the login (its secret not read
    yet), then serves; the invocation's own time bounds the wait."""
    real_connect = db.connect
    failures: list[Exception] = [
        ConnectionRefusedError("proxy not listening yet"),
        asyncpg.InvalidAuthorizationSpecificationError("proxy cannot read its secret yet"),
        ConnectionRefusedError("target not available"),
    ]

    async def late(s: Settings) -> asyncpg.Connection:
        if failures:
            raise failures.pop(0)
        return await real_connect(s)

    monkeypatch.setattr(invocation.db, "connect", late)
    monkeypatch.setattr(invocation, "FIRST_PAUSE_S", 0.01)
    migrate = await load_handler("migrate")
    result = await call(migrate.handler, {"action": "migrate"}, FakeContext(remaining_ms=300_000))
    assert result["action"] == "migrate"
    assert not failures


def test_the_connect_window_is_the_invocations_time_less_a_reserve() -> None:
    # a 15-minute function keeps trying for over 14 minutes; RDS Proxy targets take minutes
    assert invocation.connect_window_s(900) == 900 - invocation.RESERVE_S
    assert invocation.connect_window_s(5) == invocation.MIN_WINDOW_S


async def test_a_database_that_never_comes_gives_up_within_the_invocation(
    load_handler: HandlerLoader, lambda_env: pytest.MonkeyPatch
) -> None:
    lambda_env.setenv("ORDINAUT_DATABASE_URL", "postgresql://u:p@127.0.0.1:1/ordinaut")
    lambda_env.setenv("ORDINAUT_DB_CONNECT_TIMEOUT_S", "1")
    migrate = await load_handler("migrate")
    context = FakeContext(remaining_ms=int((invocation.RESERVE_S + 0.5) * 1000))
    with pytest.raises(ConnectionRefusedError):
        await call(migrate.handler, {"action": "migrate"}, context)


async def test_migrate_gives_older_tasks_their_run_bound(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    make_task: Any,
    pool: asyncpg.Pool,
) -> None:
    """Tasks written before run bounds existed (NULL) get theirs, at most the deployment's."""
    lambda_env.setenv("ORDINAUT_MAX_RUN_DURATION_S", "20")
    echo = await make_task()
    nap = {"pipeline": [{"id": "n", "uses": "wait", "with": {"seconds": 1}, "timeout_seconds": 30}]}
    slow = await make_task(payload=nap)
    await pool.execute("UPDATE tasks SET run_bound_s = NULL")
    migrate = await load_handler("migrate")
    result = await call(migrate.handler, {"action": "migrate"}, FakeContext())
    assert result["run_bounds_set"] == 2
    bounds = dict(await pool.fetch("SELECT id, run_bound_s FROM tasks"))
    assert bounds == {echo["id"]: 1.0, slow["id"]: 20.0}
