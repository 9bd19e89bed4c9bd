"""POST /events checks its bearer token in the routing statement itself (``deps.Bearer``,
issue 12): an event nothing listens to is one round trip, every statement of the request runs
on one pooled connection (a shared topic's transaction too), and it goes back to the pool on
every outcome. A token that is not live or lacks the scope gets 401 / 403 and nothing is
written, whatever the event would have done; 401 and 403 still come before any 422."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from ordinaut import ingest
from ordinaut.store import agents

SCOPES = ["tasks:read", "tasks:write", "events:publish"]


def in_use(pool: asyncpg.Pool) -> int:
    return pool.get_size() - pool.get_idle_size()


def event_task(pattern: str) -> dict[str, Any]:
    return {
        "title": f"on {pattern}",
        "schedule_kind": "event",
        "schedule_expr": pattern,
        "payload": {"pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
    }


@pytest.fixture
def acquires(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    taken: list[int] = []
    real = pool.acquire

    def counting(*args: Any, **kwargs: Any) -> Any:
        taken.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pool, "acquire", counting)
    return taken


async def test_each_path_takes_one_connection(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    admin: dict[str, Any],
    acquires: list[int],
) -> None:
    agent = await make_agent(SCOPES)
    h = agent["headers"]
    assert (await client.post("/tasks", json=event_task("orders.*"), headers=h)).status_code == 201
    r = await client.post(
        "/events/shared-topics", json={"pattern": "prices.*"}, headers=admin["headers"]
    )
    assert r.status_code == 201
    before = in_use(pool)
    bodies = [
        ({"topic": "nobody.listens", "event_id": "a"}, 0),
        ({"topic": "nobody.listens", "event_id": "a"}, 0),  # a duplicate
        ({"topic": "orders.created", "event_id": "b"}, 1),  # own task: runs queued
        ({"topic": "prices.eur", "event_id": "c"}, 0),  # shared: the transaction
    ]
    for body, queued in bodies:
        acquires.clear()
        r = await client.post("/events", json=body, headers=h)
        assert r.status_code == 202, r.text
        assert r.json()["runs_queued"] == queued
        assert len(acquires) == 1, body
        assert in_use(pool) == before
    stored = await pool.fetch(
        "SELECT event_id, tasks_matched FROM events WHERE tenant_id = $1 ORDER BY seq",
        uuid.UUID(agent["agent_id"]),
    )
    assert [(e["event_id"], e["tasks_matched"]) for e in stored] == [
        ("a", 0),
        ("b", 1),
        ("c", 0),
    ]


async def test_the_connection_goes_back_on_every_outcome(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    publisher = await make_agent(SCOPES)
    reader = await make_agent(["tasks:read"])
    before = in_use(pool)
    ok = {"topic": "orders.created"}
    cases = [
        (publisher["headers"], ok, 202),
        (reader["headers"], ok, 403),
        ({"Authorization": "Bearer ord_at_nope"}, ok, 401),
        ({}, ok, 401),
        ({"Authorization": "Bearer ord_at_nope"}, {"topic": "a*b"}, 401),  # token first
        (publisher["headers"], {"topic": "a*b"}, 422),
        (publisher["headers"], {"topic": "run.failed"}, 422),  # Ordinaut's own topic
        (publisher["headers"], {"topic": "x", "payload": {"t": "\u0000"}}, 422),
        (publisher["headers"], {"topic": "x", "event_id": "no spaces"}, 422),
        (publisher["headers"], {"topic": "x", "extra": 1}, 422),
    ]
    for headers, body, status in cases:
        r = await client.post("/events", json=body, headers=headers)
        assert r.status_code == status, (body, r.text)
        assert r.headers["x-request-id"]
        assert in_use(pool) == before, (body, status)


async def test_a_failed_shared_ingest_rolls_back_and_gives_the_connection_back(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    admin: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = await make_agent(SCOPES)
    r = await client.post(
        "/events/shared-topics", json={"pattern": "prices.*"}, headers=admin["headers"]
    )
    assert r.status_code == 201
    before = in_use(pool)

    async def broken(*args: Any, **kwargs: Any) -> list[Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(ingest, "_copy_shared", broken)  # after the event's insert
    r = await client.post("/events", json={"topic": "prices.eur"}, headers=agent["headers"])
    assert r.status_code == 500
    assert in_use(pool) == before
    stored = await pool.fetchval(
        "SELECT count(*) FROM events WHERE tenant_id = $1", uuid.UUID(agent["agent_id"])
    )
    assert stored == 0
    monkeypatch.undo()
    r = await client.post("/events", json={"topic": "prices.eur"}, headers=agent["headers"])
    assert r.status_code == 202


async def _written(pool: asyncpg.Pool) -> tuple[int, int, int]:
    return (
        await pool.fetchval("SELECT count(*) FROM events"),
        await pool.fetchval("SELECT count(*) FROM outbox WHERE event_type = 'event.received'"),
        await pool.fetchval("SELECT count(*) FROM runs"),
    )


async def test_a_token_that_may_not_publish_writes_nothing(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool, admin: dict[str, Any]
) -> None:
    publisher = await make_agent(SCOPES)
    h = publisher["headers"]
    assert (await client.post("/tasks", json=event_task("orders.*"), headers=h)).status_code == 201
    r = await client.post(
        "/events/shared-topics", json={"pattern": "prices.*"}, headers=admin["headers"]
    )
    assert r.status_code == 201
    reader = await make_agent(["tasks:read", "tasks:write"])
    # the token still says events:publish; the agent no longer has it (effective: neither)
    demoted = await make_agent(SCOPES)
    await pool.execute(
        "UPDATE agents SET scopes = ARRAY['tasks:read'] WHERE id = $1",
        uuid.UUID(demoted["agent_id"]),
    )
    deactivated = await make_agent(SCOPES)
    await pool.execute(
        "UPDATE agents SET is_active = false WHERE id = $1", uuid.UUID(deactivated["agent_id"])
    )
    revoked = await make_agent(SCOPES)
    r = await client.post(
        "/agents/auth/revoke", json={"token": revoked["token"]}, headers=revoked["headers"]
    )
    assert r.status_code == 204
    before = await _written(pool)
    for agent, status, code in (
        (reader, 403, "forbidden"),
        (demoted, 403, "forbidden"),
        (deactivated, 401, "invalid_token"),
        (revoked, 401, "invalid_token"),
        ({"headers": {"Authorization": "Bearer ord_at_nope"}}, 401, "invalid_token"),
    ):
        # nothing listens / the agent's own task would / a shared topic
        for topic in ("nobody.listens", "orders.created", "prices.eur"):
            r = await client.post("/events", json={"topic": topic}, headers=agent["headers"])
            assert r.status_code == status, (agent, topic, r.text)
            assert r.json()["error"]["code"] == code
    assert await _written(pool) == before

    r = await client.post("/events", json={"topic": "orders.created"}, headers=h)
    assert (r.status_code, r.json()["runs_queued"]) == (202, 1)
    r = await client.post("/events", json={"topic": "x"}, headers=admin["headers"])
    assert r.status_code == 202  # admin holds every scope


async def test_401_and_403_come_before_any_422(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    reader = await make_agent(["tasks:read"])
    bad = {"Authorization": "Bearer ord_at_nope"}
    refused_bodies = [
        {"topic": "a*b"},  # the schema's pattern check: FastAPI's
        {"topic": "run.failed"},  # Ordinaut's own topic: the ingest's check
        {"topic": "x", "event_id": "no spaces"},  # the ingest's event id check
        {"topic": "x", "extra": 1},
    ]
    for body in refused_bodies:
        r = await client.post("/events", json=body, headers=bad)
        assert r.status_code == 401, (body, r.text)
        r = await client.post("/events", json=body, headers=reader["headers"])
        assert r.status_code == 403, (body, r.text)
    assert await _written(pool) == (0, 0, 0)


async def test_the_token_is_checked_in_the_routing_statement(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    acquires: list[int],
) -> None:
    agent = await make_agent(SCOPES)
    checks: list[str] = []
    real = agents.authenticate

    async def counted(*args: Any, **kwargs: Any) -> Any:
        checks.append("authenticate")
        return await real(*args, **kwargs)

    monkeypatch.setattr(agents, "authenticate", counted)
    acquires.clear()
    r = await client.post("/events", json={"topic": "nobody.listens"}, headers=agent["headers"])
    assert r.status_code == 202
    assert (checks, len(acquires)) == ([], 1)  # no separate token check, one connection
