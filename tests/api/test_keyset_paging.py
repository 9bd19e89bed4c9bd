"""Keyset paging of GET /runs and GET /tasks (``next_cursor`` / ``cursor=``) beside offset.

Every listing walked by cursor must equal the whole ordered listing (ties on the time broken by
id, no item twice, none missed), a cursor works only with the query it came from (tenancy,
filters, route), and an altered cursor is a 422 naming ``query.cursor``.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

ALL = ["tasks:read", "tasks:write", "runs:read", "events:publish"]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def echo_task(**extra: Any) -> dict[str, Any]:
    return {
        "title": "echo",
        "schedule_kind": "cron",
        "schedule_expr": "0 0 1 1 *",
        "payload": {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
        **extra,
    }


async def _runs(pool: asyncpg.Pool, task_id: str, owner: str, times: list[datetime]) -> None:
    """Finished runs of one task at ``times`` (repeated instants make ties)."""
    ids = [uuid.uuid4() for _ in times]
    await pool.execute(
        """
        INSERT INTO runs (id, task_id, owner_id, slot, trigger, scheduled_for, status, attempt,
                          idempotency_key, started_at, finished_at, created_at, updated_at)
        SELECT r.id, $2, $3, 'manual:' || r.id, 'run_now', r.at, 'succeeded', 1, r.id::text,
               r.at, r.at, r.at, r.at
        FROM unnest($1::uuid[], $4::timestamptz[]) AS r(id, at)
        """,
        ids,
        uuid.UUID(task_id),
        uuid.UUID(owner),
        times,
    )


async def _walk(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """Every item id of a listing read page by page with cursors, and the pages."""
    sep = "&" if "?" in path else "?"
    r = await client.get(f"{path}{sep}limit={limit}", headers=headers)
    assert r.status_code == 200, r.text
    pages = [r.json()]
    while pages[-1]["next_cursor"]:
        r = await client.get(
            f"{path}{sep}limit={limit}&cursor={pages[-1]['next_cursor']}", headers=headers
        )
        assert r.status_code == 200, r.text
        pages.append(r.json())
        assert len(pages) < 100
    return [item["id"] for p in pages for item in p["items"]], pages


@pytest.fixture
async def agent_with_runs(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> dict[str, Any]:
    agent = await make_agent(ALL)
    task = (await client.post("/tasks", json=echo_task(), headers=agent["headers"])).json()
    # 23 runs, most of them sharing an instant with others: pages must cut through the ties
    times = [T0 - timedelta(minutes=i // 4) for i in range(23)]
    await _runs(pool, task["id"], agent["agent_id"], times)
    return {**agent, "task_id": task["id"]}


async def test_runs_by_cursor_are_the_whole_listing_in_order_with_ties(
    client: httpx.AsyncClient, pool: asyncpg.Pool, agent_with_runs: dict[str, Any]
) -> None:
    a = agent_with_runs
    expected = [
        str(r["id"])
        for r in await pool.fetch(
            "SELECT id FROM runs WHERE owner_id = $1 ORDER BY scheduled_for DESC, id",
            uuid.UUID(a["agent_id"]),
        )
    ]
    for path in ("/runs", f"/runs?task_id={a['task_id']}"):
        for limit in (1, 3, 4, 22, 23, 50):
            ids, pages = await _walk(client, path, a["headers"], limit)
            assert ids == expected, (path, limit)
            assert pages[0]["total"] == 23  # the first page counts, as before
            assert all(p["total"] is None for p in pages[1:])  # cursor pages never count
            assert all(p["has_more"] for p in pages[:-1])
            assert not pages[-1]["has_more"]
            assert pages[-1]["next_cursor"] is None


async def test_runs_offset_paging_still_counts_and_agrees_with_the_cursor(
    client: httpx.AsyncClient, agent_with_runs: dict[str, Any]
) -> None:
    h = agent_with_runs["headers"]
    by_cursor, _ = await _walk(client, "/runs", h, 5)
    by_offset: list[str] = []
    for offset in range(0, 25, 5):
        page = (await client.get(f"/runs?limit=5&offset={offset}", headers=h)).json()
        assert page["total"] == 23
        assert page["offset"] == offset
        assert page["has_more"] == (offset + 5 < 23)
        by_offset += [item["id"] for item in page["items"]]
    assert by_offset == by_cursor


async def test_total_false_skips_the_count_and_keeps_has_more(
    client: httpx.AsyncClient, agent_with_runs: dict[str, Any]
) -> None:
    h = agent_with_runs["headers"]
    page = (await client.get("/runs?limit=10&total=false", headers=h)).json()
    assert page["total"] is None
    assert page["has_more"]
    assert len(page["items"]) == 10
    page = (await client.get("/runs?limit=10&offset=20&total=false", headers=h)).json()
    assert page["total"] is None
    assert not page["has_more"]
    assert len(page["items"]) == 3
    assert page["next_cursor"] is None


async def test_tasks_by_cursor_are_the_whole_listing_with_ties(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    agent = await make_agent(ALL)
    h = agent["headers"]
    for _ in range(3):
        assert (await client.post("/tasks", json=echo_task(), headers=h)).status_code == 201
    # the frozen clock gives every task created through the API the same created_at; add more
    # at other instants, and some ties among those too
    await pool.execute(
        """
        INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, timezone,
                           payload, status, created_at, updated_at)
        SELECT gen_random_uuid(), $1, 'seed ' || g, 'cron', '0 0 1 1 *', 'UTC', '{}', 'paused',
               $2::timestamptz - (g / 3) * interval '1 hour', $2
        FROM generate_series(1, 14) AS g
        """,
        uuid.UUID(agent["agent_id"]),
        T0,
    )
    expected = [
        str(r["id"])
        for r in await pool.fetch(
            "SELECT id FROM tasks WHERE created_by = $1 ORDER BY created_at DESC, id",
            uuid.UUID(agent["agent_id"]),
        )
    ]
    for limit in (1, 2, 5, 17, 40):
        ids, pages = await _walk(client, "/tasks", h, limit)
        assert ids == expected, limit
        assert pages[0]["total"] == 17
    paused, _ = await _walk(client, "/tasks?status=paused&search=seed", h, 4)
    assert paused == [i for i in expected if i in set(paused)]
    assert len(paused) == 14


async def test_a_cursor_is_bound_to_its_owner_route_and_filters(
    client: httpx.AsyncClient, agent_with_runs: dict[str, Any], make_agent: Any, admin: Any
) -> None:
    a = agent_with_runs
    cursor = (await client.get("/runs?limit=5", headers=a["headers"])).json()["next_cursor"]
    assert cursor
    other = await make_agent(ALL, name="other")
    # another agent holding the cursor: refused, and it never reads the first agent's runs
    r = await client.get(f"/runs?limit=5&cursor={cursor}", headers=other["headers"])
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "query.cursor"
    # the same agent with another filter, or on the tasks list
    for path in (
        f"/runs?limit=5&status=succeeded&cursor={cursor}",
        f"/runs?limit=5&task_id={a['task_id']}&cursor={cursor}",
        f"/tasks?limit=5&cursor={cursor}",
    ):
        r = await client.get(path, headers=a["headers"])
        assert r.status_code == 422, path
    # an admin's cursor over every agent does not page its own runs, nor the other way round
    every = (await client.get("/runs?limit=5&owner=*", headers=admin["headers"])).json()
    r = await client.get(f"/runs?limit=5&cursor={every['next_cursor']}", headers=admin["headers"])
    assert r.status_code == 422
    r = await client.get(
        f"/runs?limit=5&owner=*&cursor={every['next_cursor']}", headers=admin["headers"]
    )
    assert r.status_code == 200
    assert r.json()["items"]


async def test_tampered_cursors_are_422(
    client: httpx.AsyncClient, agent_with_runs: dict[str, Any]
) -> None:
    h = agent_with_runs["headers"]
    cursor = (await client.get("/runs?limit=5", headers=h)).json()["next_cursor"]
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    flipped = []
    for i in (1, 5, 12, len(raw) - 1):  # the time, the id and the check
        changed = bytearray(raw)
        changed[i] ^= 0x01
        flipped.append(base64.urlsafe_b64encode(changed).rstrip(b"=").decode())
    for bad in [*flipped, cursor[:-3], cursor + "AA", "x", "not a cursor!", "%00"]:
        r = await client.get("/runs", params={"limit": 5, "cursor": bad}, headers=h)
        assert r.status_code == 422, bad
        fields = [d.get("field") for d in r.json()["error"]["details"]]
        assert any(f and "cursor" in f for f in fields), (bad, fields)
    r = await client.get(f"/runs?limit=5&offset=5&cursor={cursor}", headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "query.offset"
