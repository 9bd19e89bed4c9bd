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


class _Recorder:
    """Stands in for the pool: keeps the statement ``list_runs`` would run (and its args)."""

    def __init__(self) -> None:
        self.page: tuple[str, tuple[Any, ...]] | None = None

    async def fetchval(self, sql: str, *args: Any) -> int:
        return 0

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.page = (sql, args)
        return []


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _plan_nodes(child))]


async def test_a_tasks_page_reads_only_its_runs_under_another_tasks_newer_ones(
    client: httpx.AsyncClient, make_agent: Any, admin: Any, pool: asyncpg.Pool
) -> None:
    """A task whose runs sit below another task's newer ones (same agent): its page, first or
    after a cursor, is an index range of the task's own runs, never the owner's runs filtered
    by task (which read every newer run of the other task first)."""
    from ordinaut.store import runs

    a = await make_agent(ALL)
    old = (await client.post("/tasks", json=echo_task(), headers=a["headers"])).json()
    chatty = (await client.post("/tasks", json=echo_task(), headers=a["headers"])).json()
    await _runs(
        pool, old["id"], a["agent_id"], [T0 - timedelta(days=1, minutes=i) for i in range(30)]
    )
    await _runs(pool, chatty["id"], a["agent_id"], [T0 + timedelta(seconds=i) for i in range(400)])
    await pool.execute("ANALYZE runs")
    owner, task = uuid.UUID(a["agent_id"]), uuid.UUID(old["id"])
    last = await pool.fetchrow(
        "SELECT scheduled_for, id FROM runs WHERE task_id = $1 ORDER BY scheduled_for DESC, id "
        "OFFSET 9 LIMIT 1",
        task,
    )
    for after in (None, (last["scheduled_for"], last["id"])):
        recorder = _Recorder()
        await runs.list_runs(
            recorder, owner, task_id=task, status=None, success=None, start=None, end=None,
            limit=10, after=after, count=False,
        )  # fmt: skip
        assert recorder.page is not None
        sql, args = recorder.page
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                # on a few hundred rows the planner would rather scan and sort: take that away,
                # so the choice left is between the indexes
                await conn.execute("SET LOCAL enable_seqscan = off")
                await conn.execute("SET LOCAL enable_bitmapscan = off")
                explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
                # The planner weighs the two indexes by row counts and the table's order, not
                # by where the task's runs sit in the owner's index (with one agent owning a
                # table stored in its order, it took the owner's: 168 ms for a first page under
                # 300k newer runs). So the statement must leave it no such choice: without the
                # task's index it still never reads a range of the owner's.
                await conn.execute("DROP INDEX runs_task_sched")
                fallback = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
            finally:
                await tx.rollback()  # the index stays
        plan = explained[0]["Plan"]
        # (an index range on the owner: with scans turned off, a whole-index pass of another
        # index may stand in for a scan, which is not that)
        walked = [n.get("Index Cond", "") for n in _plan_nodes(fallback[0]["Plan"])]
        assert not [c for c in walked if "owner_id" in c], (after, walked)
        nodes = _plan_nodes(plan)
        scans = {n["Index Name"] for n in nodes if "Index Name" in n}
        assert scans == {"runs_task_sched"}, (after, scans)
        assert sum(n.get("Rows Removed by Filter", 0) for n in nodes) == 0, after
        assert sum(n["Actual Rows"] for n in nodes if "Index Name" in n) <= 11, after
    # the page itself: the old task's runs only, and only to their owner (or an admin)
    ids, _ = await _walk(client, f"/runs?task_id={old['id']}", a["headers"], 7)
    assert len(ids) == 30
    expected = await pool.fetch(
        "SELECT id FROM runs WHERE task_id = $1 ORDER BY scheduled_for DESC, id", task
    )
    assert ids == [str(r["id"]) for r in expected]
    other = await make_agent(ALL, name="other")
    r = await client.get(f"/runs?task_id={old['id']}", headers=other["headers"])
    assert r.status_code == 200
    assert r.json()["items"] == []
    assert r.json()["total"] == 0
    r = await client.get(
        f"/runs?task_id={old['id']}&owner={other['agent_id']}", headers=admin["headers"]
    )
    assert r.json()["items"] == []
    r = await client.get(
        f"/runs?task_id={old['id']}&owner={a['agent_id']}&limit=50", headers=admin["headers"]
    )
    assert [i["id"] for i in r.json()["items"]] == ids
