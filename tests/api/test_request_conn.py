"""One pooled connection per request on hot reads (``deps.require_conn``): the token check and
the route's statement share it, it goes back to the pool on every outcome, and the token is
still checked against the database on every request."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from samples import CRON_TASK

from ordinaut.api.routes import tasks as task_routes


def in_use(pool: asyncpg.Pool) -> int:
    return pool.get_size() - pool.get_idle_size()


async def test_the_connection_goes_back_on_every_outcome(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    owner = await make_agent(["tasks:read", "tasks:write"])
    other = await make_agent(["tasks:read"])
    no_scope = await make_agent(["runs:read"])
    task = (await client.post("/tasks", json=CRON_TASK, headers=owner["headers"])).json()
    before = in_use(pool)
    path = f"/tasks/{task['id']}"
    cases = [
        (owner["headers"], 200),
        (other["headers"], 404),  # another agent's task: not found, like a missing one
        (no_scope["headers"], 403),
        ({"Authorization": "Bearer ord_at_nope"}, 401),
        ({}, 401),
        ({"Authorization": f"Basic {owner['token']}"}, 401),  # another scheme
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": f"bearer   {owner['token']} "}, 200),  # as HTTPBearer reads it
    ]
    for headers, status in cases:
        for _ in range(3):
            r = await client.get(path, headers=headers)
            assert r.status_code == status, (headers, r.text)
            assert r.headers["x-request-id"]
            assert in_use(pool) == before, (status, in_use(pool), before)
    r = await client.get(f"/tasks/{uuid.uuid4()}", headers=owner["headers"])
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert in_use(pool) == before


async def test_the_connection_goes_back_after_an_unexpected_error(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await make_agent(["tasks:read", "tasks:write"])
    task = (await client.post("/tasks", json=CRON_TASK, headers=owner["headers"])).json()
    before = in_use(pool)

    async def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(task_routes.tasks, "get_task", broken)
    r = await client.get(f"/tasks/{task['id']}", headers=owner["headers"])
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert r.json()["request_id"]
    assert in_use(pool) == before


async def test_a_revoked_token_or_deactivated_agent_is_refused_on_the_next_read(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    owner = await make_agent(["tasks:read", "tasks:write"])
    second = await make_agent(["tasks:read", "tasks:write"])
    task = (await client.post("/tasks", json=CRON_TASK, headers=owner["headers"])).json()
    path = f"/tasks/{task['id']}"
    assert (await client.get(path, headers=owner["headers"])).status_code == 200
    r = await client.post(
        "/agents/auth/revoke", json={"token": owner["token"]}, headers=owner["headers"]
    )
    assert r.status_code == 204
    r = await client.get(path, headers=owner["headers"])
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"

    own = (await client.post("/tasks", json=CRON_TASK, headers=second["headers"])).json()
    path = f"/tasks/{own['id']}"
    assert (await client.get(path, headers=second["headers"])).status_code == 200
    await pool.execute(
        "UPDATE agents SET is_active = false WHERE id = $1", uuid.UUID(second["agent_id"])
    )
    r = await client.get(path, headers=second["headers"])
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"


async def test_a_task_read_takes_one_connection(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await make_agent(["tasks:read", "tasks:write"])
    task = (await client.post("/tasks", json=CRON_TASK, headers=owner["headers"])).json()
    acquires = []
    real = pool.acquire

    def counting(*args: Any, **kwargs: Any) -> Any:
        acquires.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pool, "acquire", counting)
    r = await client.get(f"/tasks/{task['id']}", headers=owner["headers"])
    assert r.status_code == 200
    assert r.json()["id"] == task["id"]
    assert len(acquires) == 1  # the token check and the read on the same connection
