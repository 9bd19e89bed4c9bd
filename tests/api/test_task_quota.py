"""The per-agent task quota (``max_tasks_per_agent``) reads a counter row that triggers keep
(migration 0016): it must equal the agent's stored tasks after any mix of concurrent creates,
deletes and cancels, and concurrent creates must never pass the limit together."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from ordinaut.config import Settings
from ordinaut.store import tasks

ALL = ["tasks:read", "tasks:write", "runs:read", "events:publish"]
COUNTER = "SELECT owned FROM agent_task_counts WHERE agent_id = $1"
STORED = "SELECT count(*) FROM tasks WHERE created_by = $1"


def echo_task(**extra: Any) -> dict[str, Any]:
    return {
        "title": "echo",
        "schedule_kind": "cron",
        "schedule_expr": "0 0 1 1 *",
        "payload": {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
        **extra,
    }


async def _counted(pool: asyncpg.Pool, agent_id: str) -> tuple[int | None, int]:
    owner = uuid.UUID(agent_id)
    return await pool.fetchval(COUNTER, owner), await pool.fetchval(STORED, owner)


async def test_concurrent_creates_never_pass_the_limit(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_agent: Any,
    settings: Settings,
    pool: asyncpg.Pool,
) -> None:
    app.state.deps.settings = settings.replace(max_tasks_per_agent=5)
    agent = await make_agent(ALL)
    h = agent["headers"]
    assert (await client.post("/tasks", json=echo_task(), headers=h)).status_code == 201
    answers = await asyncio.gather(
        *(client.post("/tasks", json=echo_task(), headers=h) for _ in range(16))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 4 + [422] * 12
    refused = next(r for r in answers if r.status_code == 422).json()["error"]
    assert refused["code"] == "limit_exceeded"
    assert refused["details"][0]["limit"] == "max_tasks_per_agent"
    assert await _counted(pool, agent["agent_id"]) == (5, 5)
    # a refused create wrote nothing: no audit row, no lifecycle event beyond the five
    owner = uuid.UUID(agent["agent_id"])
    audit = "SELECT count(*) FROM audit_log WHERE actor_id = $1 AND action = 'task.created'"
    assert await pool.fetchval(audit, owner) == 5
    created = "SELECT count(*) FROM outbox WHERE tenant_id = $1 AND event_type = 'task.created'"
    assert await pool.fetchval(created, owner) == 5


async def test_counter_follows_concurrent_creates_deletes_and_cancels(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_agent: Any,
    settings: Settings,
    pool: asyncpg.Pool,
) -> None:
    # Room for every interleaving of the mixed requests (a create may run before the deletes:
    # 30 + 15), then the limit of 40 for the last part.
    app.state.deps.settings = settings.replace(max_tasks_per_agent=45)
    agent, other = await make_agent(ALL), await make_agent(ALL, name="other")
    h = agent["headers"]
    ids = [
        (await client.post("/tasks", json=echo_task(), headers=h)).json()["id"] for _ in range(30)
    ]
    assert (await client.post("/tasks", json=echo_task(), headers=other["headers"])).is_success
    mixed = [
        *(client.delete(f"/tasks/{i}", headers=h) for i in ids[:10]),
        *(client.post(f"/tasks/{i}/cancel", headers=h) for i in ids[10:20]),
        *(client.post("/tasks", json=echo_task(), headers=h) for _ in range(15)),
    ]
    answers = await asyncio.gather(*mixed)
    assert all(r.is_success for r in answers), [r.text for r in answers if not r.is_success]
    # 30 - 10 deleted + 15 created; canceled tasks still count (they keep their rows)
    assert await _counted(pool, agent["agent_id"]) == (35, 35)
    assert await _counted(pool, other["agent_id"]) == (1, 1)
    # the limit counts canceled tasks too: 5 places left
    app.state.deps.settings = settings.replace(max_tasks_per_agent=40)
    answers = await asyncio.gather(
        *(client.post("/tasks", json=echo_task(), headers=h) for _ in range(8))
    )
    assert sorted(r.status_code for r in answers) == [201] * 5 + [422] * 3
    assert await _counted(pool, agent["agent_id"]) == (40, 40)


async def test_counter_follows_every_statement_on_tasks(
    make_agent: Any, pool: asyncpg.Pool
) -> None:
    a, b = await make_agent(ALL), await make_agent(ALL, name="b")
    assert await _counted(pool, a["agent_id"]) == (0, 0)  # a new agent has its row at once
    owner_a, owner_b = uuid.UUID(a["agent_id"]), uuid.UUID(b["agent_id"])
    await pool.execute(
        """
        INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, timezone,
                           payload, status, created_at, updated_at)
        SELECT gen_random_uuid(), CASE WHEN g % 3 = 0 THEN $2::uuid ELSE $1::uuid END, 'bulk', 'cron',
               '0 0 1 1 *', 'UTC', '{}', 'paused', now(), now()
        FROM generate_series(1, 300) AS g
        """,
        owner_a,
        owner_b,
    )
    assert await _counted(pool, a["agent_id"]) == (200, 200)
    assert await _counted(pool, b["agent_id"]) == (100, 100)
    assert await tasks.count_owned(pool, owner_a) == 200
    moved = await pool.execute(
        "UPDATE tasks SET created_by = $2 WHERE id IN "
        "(SELECT id FROM tasks WHERE created_by = $1 LIMIT 7)",
        owner_a,
        owner_b,
    )
    assert moved == "UPDATE 7"
    assert await _counted(pool, a["agent_id"]) == (193, 193)
    assert await _counted(pool, b["agent_id"]) == (107, 107)
    await pool.execute("DELETE FROM tasks WHERE created_by = $1 AND ctid IN "
                       "(SELECT ctid FROM tasks WHERE created_by = $1 LIMIT 50)", owner_a)  # fmt: skip
    assert await _counted(pool, a["agent_id"]) == (143, 143)
    # deleting the agent cascades to its tasks and its counter row
    await pool.execute("DELETE FROM agents WHERE id = $1", owner_b)
    assert await pool.fetchval(COUNTER, owner_b) is None
    assert await _counted(pool, a["agent_id"]) == (143, 143)
    await pool.execute("TRUNCATE tasks CASCADE")
    assert await _counted(pool, a["agent_id"]) == (0, 0)
