"""store.agents on real PostgreSQL: hashing, token lifecycle, guarded updates, audit rows."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import pytest

from ordinaut import auth
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.errors import Conflict, NotFound
from ordinaut.store import agents


async def test_create_stores_only_a_salted_hash(pool: asyncpg.Pool, clock: FrozenClock) -> None:
    async with pool.acquire() as conn:
        one, secret_one = await agents.create_agent(
            conn, name="one", scopes=["tasks:write", "tasks:read"], now=clock.now()
        )
        two, secret_two = await agents.create_agent(
            conn, name="two", scopes=["tasks:read"], now=clock.now()
        )
    assert one.scopes == ("tasks:read", "tasks:write")
    assert one.id.version == 4
    assert one.created_at == clock.now()
    assert one.is_active
    assert len(secret_one) >= 43
    assert secret_one != secret_two
    rows = await pool.fetch("SELECT id, secret_hash FROM agents ORDER BY name")
    for row, secret in zip(rows, (secret_one, secret_two), strict=True):
        assert row["secret_hash"].startswith("scrypt$")
        assert secret not in row["secret_hash"]
        assert auth.verify_secret(secret, row["secret_hash"])
    assert not auth.verify_secret(secret_one, rows[1]["secret_hash"])
    audit = await pool.fetch("SELECT action, subject_id, details FROM audit_log ORDER BY id")
    assert [(a["action"], a["subject_id"]) for a in audit] == [
        ("agent.created", one.id),
        ("agent.created", two.id),
    ]
    assert secret_one not in str(audit[0]["details"])


async def test_unknown_scope_is_refused(pool: asyncpg.Pool, clock: FrozenClock) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="root"):
            await agents.create_agent(conn, name="x", scopes=["root"], now=clock.now())
    assert await pool.fetchval("SELECT count(*) FROM agents") == 0


async def test_mutation_and_audit_share_a_transaction(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await agents.create_agent(conn, name="ghost", scopes=["tasks:read"], now=clock.now())
        await tx.rollback()
    assert await pool.fetchval("SELECT count(*) FROM agents") == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_exchange_authenticate_refresh_revoke(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    now = clock.now()
    async with pool.acquire() as conn:
        agent, secret = await agents.create_agent(
            conn, name="a", scopes=["tasks:read", "runs:read"], now=now
        )
        pair = await agents.exchange_secret(conn, str(agent.id), secret, now, settings)
    assert pair.scope == "tasks:read runs:read"
    assert pair.token_type == "bearer"
    stored = await pool.fetch("SELECT token_hash, kind, expires_at FROM agent_tokens")
    assert {r["kind"] for r in stored} == {"access", "refresh"}
    assert auth.token_digest(pair.access_token) in {bytes(r["token_hash"]) for r in stored}
    assert all(pair.access_token.encode() not in bytes(r["token_hash"]) for r in stored)

    grant = await agents.authenticate(pool, pair.access_token, now)
    assert grant == agents.Grant(agent.id, frozenset({"tasks:read", "runs:read"}))
    assert await agents.authenticate(pool, pair.refresh_token, now) is None
    expiry = now + timedelta(seconds=settings.access_token_ttl_s)
    assert await agents.authenticate(pool, pair.access_token, expiry) is None

    async with pool.acquire() as conn:
        rotated = await agents.refresh_tokens(conn, pair.refresh_token, now, settings)
        assert await agents.authenticate(pool, rotated.access_token, now) is not None
        assert await agents.revoke_token(conn, rotated.access_token, now, actor_id=agent.id)
        assert not await agents.revoke_token(conn, rotated.access_token, now, actor_id=agent.id)
    assert await agents.authenticate(pool, rotated.access_token, now) is None
    # The first access token was from the same login (family): revoked with it.
    assert await agents.authenticate(pool, pair.access_token, now) is None


async def test_exchange_refuses_without_revealing_which_part_was_wrong(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        agent, secret = await agents.create_agent(conn, name="a", scopes=["admin"], now=clock.now())
        attempts = [
            (str(agent.id), "wrong"),
            (str(uuid.uuid4()), secret),
            ("garbage", secret),
            (str(agent.id), "x" * 10_000),
        ]
        for agent_id, attempt in attempts:
            with pytest.raises(auth.InvalidCredentials) as caught:
                await agents.exchange_secret(conn, agent_id, attempt, clock.now(), settings)
            assert caught.value.message == agents.BAD_CREDENTIALS
            assert caught.value.status == 401


async def test_concurrent_refresh_with_one_token_yields_at_most_one_pair(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        agent, _ = await agents.create_agent(conn, name="a", scopes=["tasks:read"], now=clock.now())
        pair = await agents.issue_tokens(conn, agent.id, clock.now(), settings)

    async def attempt() -> agents.TokenPair | None:
        async with pool.acquire() as conn:
            try:
                return await agents.refresh_tokens(conn, pair.refresh_token, clock.now(), settings)
            except auth.InvalidToken:
                return None

    results = await asyncio.gather(*(attempt() for _ in range(5)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    # The losers presented a rotated token: reuse, so the winner's login is revoked as well.
    assert await agents.authenticate(pool, winners[0].access_token, clock.now()) is None


async def test_issue_purges_expired_tokens(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        agent, _ = await agents.create_agent(conn, name="a", scopes=["tasks:read"], now=clock.now())
        await agents.issue_tokens(conn, agent.id, clock.now(), settings)
        later = clock.advance(settings.refresh_token_ttl_s + 1)
        await agents.issue_tokens(conn, agent.id, later, settings)
    assert await pool.fetchval("SELECT count(*) FROM agent_tokens") == 2
    assert await pool.fetchval("SELECT min(created_at) FROM agent_tokens") == later


async def test_update_delete_rotate_guards(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    now = clock.now()
    missing = uuid.uuid4()
    async with pool.acquire() as conn:
        admin, _ = await agents.create_agent(conn, name="root", scopes=["admin"], now=now)
        with pytest.raises(NotFound):
            await agents.update_agent(conn, missing, now=now, name="x")
        with pytest.raises(NotFound):
            await agents.delete_agent(conn, missing, now=now)
        with pytest.raises(NotFound):
            await agents.rotate_secret(conn, missing, now=now)
        with pytest.raises(NotFound):
            await agents.issue_tokens(conn, missing, now, settings)
        with pytest.raises(NotFound):
            await agents.get_agent(conn, missing)
        with pytest.raises(Conflict):
            await agents.delete_agent(conn, admin.id, now=now, actor_id=admin.id)
        with pytest.raises(Conflict):
            await agents.update_agent(conn, admin.id, now=now, is_active=False, actor_id=admin.id)
        unchanged = await agents.update_agent(conn, admin.id, now=now, actor_id=admin.id)
        assert unchanged.name == "root"
        assert unchanged.scopes == ("admin",)
        page, total = await agents.list_agents(conn, limit=10, offset=0)
        assert total == 1
        assert page[0].id == admin.id
