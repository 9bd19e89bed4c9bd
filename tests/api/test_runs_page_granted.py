"""``GET /runs`` of the caller's own runs checks its token in the page's own statement
(``runs.list_own_runs_granted``): one round trip for a cursor page or an uncounted one, the
token still checked against the database on every request, 401 / 403 before anything about the
input, and a cursor checked against its listing before anything read is used."""

from __future__ import annotations

import base64
import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from samples import CRON_TASK

from ordinaut.store import agents

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def in_use(pool: asyncpg.Pool) -> int:
    return pool.get_size() - pool.get_idle_size()


async def _with_runs(client: httpx.AsyncClient, pool: asyncpg.Pool, agent: dict[str, Any]) -> str:
    task = (await client.post("/tasks", json=CRON_TASK, headers=agent["headers"])).json()
    await pool.execute(
        """
        INSERT INTO runs (id, task_id, owner_id, slot, trigger, scheduled_for, status, attempt,
                          idempotency_key, started_at, finished_at, created_at, updated_at)
        SELECT u, $1, $2, 'manual:' || u, 'run_now', $3::timestamptz - g * interval '1 minute',
               'succeeded', 1, u::text, $3, $3, $3, $3
        FROM (SELECT g, gen_random_uuid() AS u FROM generate_series(1, 12) AS g) AS s
        """,
        uuid.UUID(task["id"]),
        uuid.UUID(agent["agent_id"]),
        T0,
    )
    return str(task["id"])


async def test_a_page_of_own_runs_is_one_statement_on_one_connection(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await make_agent(["runs:read", "tasks:write"])
    task_id = await _with_runs(client, pool, owner)
    h = owner["headers"]
    first = (await client.get(f"/runs?task_id={task_id}&limit=5", headers=h)).json()
    assert first["total"] == 12
    expected = [
        str(r["id"])
        for r in await pool.fetch(
            "SELECT id FROM runs WHERE task_id = $1 ORDER BY scheduled_for DESC, id",
            uuid.UUID(task_id),
        )
    ]
    acquires = []
    real = pool.acquire

    def counting(*args: Any, **kwargs: Any) -> Any:
        acquires.append(1)
        return real(*args, **kwargs)

    async def no_separate_check(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the token is checked by the page's own statement")

    monkeypatch.setattr(pool, "acquire", counting)
    monkeypatch.setattr(agents, "authenticate", no_separate_check)
    seen = [i["id"] for i in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        acquires.clear()
        r = await client.get(f"/runs?task_id={task_id}&limit=5&cursor={cursor}", headers=h)
        assert r.status_code == 200, r.text
        assert len(acquires) == 1
        page = r.json()
        assert page["total"] is None
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert seen == expected
    acquires.clear()
    r = await client.get("/runs?limit=3&total=false", headers=h)
    assert [i["id"] for i in r.json()["items"]] == expected[:3]
    assert r.json()["has_more"] is True
    assert len(acquires) == 1


async def test_every_outcome_answers_as_before_and_gives_the_connection_back(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    owner = await make_agent(["runs:read", "tasks:write"])
    empty = await make_agent(["runs:read"])
    no_scope = await make_agent(["tasks:read"])
    dead = await make_agent(["runs:read"])
    await client.post("/agents/auth/revoke", json={"token": dead["token"]}, headers=dead["headers"])
    task_id = await _with_runs(client, pool, owner)
    before = in_use(pool)
    for headers, status, items in [
        (owner["headers"], 200, 12),
        (empty["headers"], 200, 0),  # an agent without runs: an empty page, not a refusal
        (no_scope["headers"], 403, None),
        (dead["headers"], 401, None),
        ({"Authorization": "Bearer ord_at_nope"}, 401, None),
        ({}, 401, None),
    ]:
        for path in ("/runs?limit=50", f"/runs?task_id={task_id}&limit=50&total=false"):
            r = await client.get(path, headers=headers)
            assert r.status_code == status, (path, headers, r.text)
            if items is not None:
                expected = items if headers is owner["headers"] else 0
                assert len(r.json()["items"]) == expected, path
            assert in_use(pool) == before
    # the other agent asking for this task's runs: none of them
    r = await client.get(f"/runs?task_id={task_id}", headers=empty["headers"])
    assert r.json()["items"] == []
    assert r.json()["total"] == 0


def _forged(micros: int) -> str:
    """A cursor of the right shape naming an instant no datetime holds, with a made-up check."""
    raw = struct.pack(">Bq16s", 1, micros, uuid.uuid4().bytes) + b"\0" * 12
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_401_and_403_come_before_what_is_wrong_with_the_cursor(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    owner = await make_agent(["runs:read", "tasks:write"])
    other = await make_agent(["runs:read", "tasks:write"])
    no_scope = await make_agent(["tasks:read"])
    await _with_runs(client, pool, owner)
    await _with_runs(client, pool, other)
    theirs = (await client.get("/runs?limit=2", headers=other["headers"])).json()["next_cursor"]
    mine = (await client.get("/runs?limit=2", headers=owner["headers"])).json()["next_cursor"]
    for cursor in (theirs, "not-a-cursor", _forged(2**62), _forged(-(2**62))):
        for headers, status in [
            ({"Authorization": "Bearer ord_at_made_up"}, 401),
            (no_scope["headers"], 403),
            (owner["headers"], 422),
        ]:
            r = await client.get("/runs", params={"limit": 2, "cursor": cursor}, headers=headers)
            assert r.status_code == status, (cursor, r.text)
            if status == 422:
                assert r.json()["error"]["details"][0]["field"] == "query.cursor"
    # another agent's cursor never reads its runs, nor this caller's: it is refused
    r = await client.get(f"/runs?limit=2&cursor={theirs}", headers=owner["headers"])
    assert r.status_code == 422
    r = await client.get(f"/runs?limit=2&offset=2&cursor={mine}", headers=owner["headers"])
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "query.offset"
    r = await client.get(f"/runs?limit=2&offset=2&cursor={mine}", headers=no_scope["headers"])
    assert r.status_code == 403
    ok = await client.get(f"/runs?limit=2&cursor={mine}", headers=owner["headers"])
    assert ok.status_code == 200
    assert len(ok.json()["items"]) == 2


async def test_bad_filters_are_refused_after_the_token(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    owner = await make_agent(["runs:read"])
    naive = (T0 - timedelta(days=1)).replace(tzinfo=None).isoformat()
    for params in ({"start_time": naive}, {"limit": "many"}, {"task_id": "not-a-uuid"}):
        for headers, status in [
            ({"Authorization": "Bearer ord_at_made_up"}, 401),
            (owner["headers"], 422),
        ]:
            r = await client.get("/runs", params=params, headers=headers)
            assert r.status_code == status, (params, r.text)
