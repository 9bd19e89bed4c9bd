"""POST /events on one pooled connection (``deps.require_conn``, issue 12): the token check and
the ingest share it, a shared topic's transaction runs on it too, and it goes back to the pool
on every outcome."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from ordinaut import ingest

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
