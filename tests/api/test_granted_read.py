"""``GET /tasks/{id}`` checks its token in the same statement as its read (``deps.Bearer``,
``tasks.get_task_granted``): one round trip, the token still checked against the database on
every request, the connection back in the pool on every outcome, and 401 / 403 still answered
before anything about the input."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from samples import CRON_TASK

from ordinaut.api.routes import tasks as task_routes
from ordinaut.errors import ValidationFailed
from ordinaut.store import agents


def in_use(pool: asyncpg.Pool) -> int:
    return pool.get_size() - pool.get_idle_size()


async def test_every_outcome_answers_as_before_and_gives_the_connection_back(
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

    monkeypatch.setattr(task_routes.tasks, "get_task_granted", broken)
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


async def test_a_task_read_is_one_statement_on_one_connection(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await make_agent(["tasks:read", "tasks:write"])
    task = (await client.post("/tasks", json=CRON_TASK, headers=owner["headers"])).json()
    acquires = []
    real = pool.acquire

    def counting(*args: Any, **kwargs: Any) -> Any:
        acquires.append(1)
        return real(*args, **kwargs)

    async def no_separate_check(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the token is checked by the read's own statement")

    monkeypatch.setattr(pool, "acquire", counting)
    monkeypatch.setattr(agents, "authenticate", no_separate_check)
    r = await client.get(f"/tasks/{task['id']}", headers=owner["headers"])
    assert r.status_code == 200
    assert r.json() == task
    assert len(acquires) == 1


async def test_a_scope_removed_from_the_agent_is_refused_on_the_next_read(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    owner = await make_agent(["tasks:read", "tasks:write"])
    task = (await client.post("/tasks", json=CRON_TASK, headers=owner["headers"])).json()
    path = f"/tasks/{task['id']}"
    assert (await client.get(path, headers=owner["headers"])).status_code == 200
    await pool.execute(
        "UPDATE agents SET scopes = ARRAY['tasks:write'] WHERE id = $1",
        uuid.UUID(owner["agent_id"]),
    )
    r = await client.get(path, headers=owner["headers"])
    assert r.status_code == 403
    assert r.json()["error"]["details"] == {"required_scope": "tasks:read"}


async def test_401_and_403_come_before_what_is_wrong_with_the_id(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    owner = await make_agent(["tasks:read"])
    no_scope = await make_agent(["runs:read"])
    dead = await make_agent(["tasks:read"])
    r = await client.post(
        "/agents/auth/revoke", json={"token": dead["token"]}, headers=dead["headers"]
    )
    assert r.status_code == 204
    cases = [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer ord_at_made_up"}, 401, "invalid_token"),
        (dead["headers"], 401, "invalid_token"),  # well formed, revoked
        (no_scope["headers"], 403, "forbidden"),
        (owner["headers"], 422, "validation_error"),
    ]
    for headers, status, code in cases:
        r = await client.get("/tasks/not-a-uuid", headers=headers)
        assert r.status_code == status, (headers, r.text)
        assert r.json()["error"]["code"] == code, r.text


async def test_a_route_refusing_its_input_before_its_statement_checks_the_token_first(
    client: httpx.AsyncClient, make_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await make_agent(["tasks:read", "tasks:write"])
    no_scope = await make_agent(["runs:read"])
    task = (await client.post("/tasks", json=CRON_TASK, headers=owner["headers"])).json()
    calls = []

    async def refusing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise ValidationFailed("refused", [{"field": "task_id", "message": "refused"}])

    monkeypatch.setattr(task_routes.tasks, "get_task_granted", refusing)
    path = f"/tasks/{task['id']}"
    for headers, status in [
        ({"Authorization": "Bearer ord_at_made_up"}, 401),
        (no_scope["headers"], 403),
        (owner["headers"], 422),
    ]:
        r = await client.get(path, headers=headers)
        assert r.status_code == status, r.text
    assert len(calls) == 3  # each reached the route, which refused before its statement ran
