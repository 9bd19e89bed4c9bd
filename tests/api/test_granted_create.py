"""``POST /tasks`` checks its token, the scopes and the quota in the statement that writes the
task (``lifecycle.create_granted``, ``tasks.CREATE_TASK_GRANTED``): one round trip, and every
answer as before: 401 and 403 before anything about the body, the tool scopes' 403 before the
quota's 422, and nothing written for a caller that is refused."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from samples import CRON_TASK

from ordinaut.api.deps import Principal
from ordinaut.store import agents

PUBLISHES = {
    **CRON_TASK,
    "payload": {
        "params": {},
        "pipeline": [{"id": "p", "uses": "event.publish", "with": {"topic": "t.x", "payload": {}}}],
    },
}


async def _written(pool: asyncpg.Pool, agent_id: str) -> tuple[int, int, int]:
    """The agent's tasks, task.created audit rows and task.created events."""
    owner = uuid.UUID(agent_id)
    return (
        await pool.fetchval("SELECT count(*) FROM tasks WHERE created_by = $1", owner),
        await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE actor_id = $1 AND action = 'task.created'",
            owner,
        ),
        await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE tenant_id = $1 AND event_type = 'task.created'",
            owner,
        ),
    )


async def test_a_create_is_one_statement_with_its_token_check(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await make_agent(["tasks:read", "tasks:write"])
    statements: list[str] = []
    real = asyncpg.Connection.fetchrow

    async def counting(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        statements.append(query)
        return await real(self, query, *args, **kw)

    async def no_separate_check(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the token is checked by the create's own statement")

    monkeypatch.setattr(asyncpg.Connection, "fetchrow", counting)
    monkeypatch.setattr(agents, "authenticate", no_separate_check)
    r = await client.post("/tasks", json=CRON_TASK, headers=owner["headers"])
    assert r.status_code == 201, r.text
    assert len(statements) == 1
    created = r.json()
    assert (await client.get(f"/tasks/{created['id']}", headers=owner["headers"])).json() == (
        created
    )
    assert created["created_by"] == owner["agent_id"]
    assert await _written(pool, owner["agent_id"]) == (1, 1, 1)


async def test_every_refusal_answers_as_before_and_writes_nothing(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    plain = await make_agent(["tasks:read", "tasks:write"])
    no_scope = await make_agent(["tasks:read", "runs:read"])
    dead = await make_agent(["tasks:read", "tasks:write"])
    r = await client.post(
        "/agents/auth/revoke", json={"token": dead["token"]}, headers=dead["headers"]
    )
    assert r.status_code == 204
    cases = [
        (plain, PUBLISHES, 403, {"required_scopes": ["events:publish"]}),
        (no_scope, CRON_TASK, 403, {"required_scope": "tasks:write"}),
        (no_scope, PUBLISHES, 403, {"required_scope": "tasks:write"}),  # the route's scope first
        (dead, CRON_TASK, 401, None),
    ]
    for agent, body, status, details in cases:
        r = await client.post("/tasks", json=body, headers=agent["headers"])
        assert r.status_code == status, r.text
        if details is not None:
            assert r.json()["error"]["details"] == details
        assert await _written(pool, agent["agent_id"]) == (0, 0, 0)
    r = await client.post("/tasks", json=CRON_TASK, headers={"Authorization": "Bearer ord_at_x"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"


async def test_a_scope_removed_from_the_agent_is_refused_on_the_next_create(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    able = await make_agent(["tasks:read", "tasks:write", "events:publish"])
    assert (await client.post("/tasks", json=PUBLISHES, headers=able["headers"])).status_code == 201
    await pool.execute(
        "UPDATE agents SET scopes = ARRAY['tasks:read', 'tasks:write'] WHERE id = $1",
        uuid.UUID(able["agent_id"]),
    )
    r = await client.post("/tasks", json=PUBLISHES, headers=able["headers"])
    assert r.status_code == 403
    assert r.json()["error"]["details"] == {"required_scopes": ["events:publish"]}
    assert await _written(pool, able["agent_id"]) == (1, 1, 1)
    await pool.execute(
        "UPDATE agents SET is_active = false WHERE id = $1", uuid.UUID(able["agent_id"])
    )
    r = await client.post("/tasks", json=CRON_TASK, headers=able["headers"])
    assert r.status_code == 401
    assert await _written(pool, able["agent_id"]) == (1, 1, 1)


@pytest.mark.parametrize(
    "body",
    [
        {**CRON_TASK, "schedule_expr": "61 * * * *"},  # refused by the route (InvalidSchedule)
        {**CRON_TASK, "priority": 99},  # refused by the body's model
        {key: value for key, value in CRON_TASK.items() if key != "title"},
    ],
)
async def test_401_and_403_come_before_what_is_wrong_with_the_body(
    client: httpx.AsyncClient, make_agent: Any, body: dict[str, Any]
) -> None:
    owner = await make_agent(["tasks:write"])
    no_scope = await make_agent(["tasks:read"])
    dead = await make_agent(["tasks:write"])
    r = await client.post(
        "/agents/auth/revoke", json={"token": dead["token"]}, headers=dead["headers"]
    )
    assert r.status_code == 204
    cases = [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer ord_at_made_up"}, 401, "invalid_token"),
        (dead["headers"], 401, "invalid_token"),
        (no_scope["headers"], 403, "forbidden"),
        (owner["headers"], 422, None),
    ]
    for headers, status, code in cases:
        r = await client.post("/tasks", json=body, headers=headers)
        assert r.status_code == status, (headers, r.text)
        if code is not None:
            assert r.json()["error"]["code"] == code, r.text


async def test_401_comes_before_a_bad_idempotency_key(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    owner = await make_agent(["tasks:write"])
    long_key = {"Idempotency-Key": "k" * 201}
    r = await client.post("/tasks", json=CRON_TASK, headers=long_key)
    assert r.status_code == 401
    r = await client.post("/tasks", json=CRON_TASK, headers={**owner["headers"], **long_key})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "header.Idempotency-Key"


SCOPES = ("tasks:write", "events:publish", "admin")
SUBSETS = [
    list(chosen) for n in range(len(SCOPES) + 1) for chosen in itertools.combinations(SCOPES, n)
]


async def test_the_statement_admits_exactly_whom_principal_has_admits(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    """Every pair of token scopes and agent scopes: the statement writes the task exactly when
    the caller ``Principal.has`` both scopes the create needs (admin implies them), and the
    answer is what the separate check answered before."""
    agent = await make_agent(list(SCOPES))
    owner = uuid.UUID(agent["agent_id"])
    digest = agents.auth.token_digest(agent["token"])
    written = 0
    for token_scopes, agent_scopes in itertools.product(SUBSETS, SUBSETS):
        await pool.execute("UPDATE agents SET scopes = $2 WHERE id = $1", owner, agent_scopes)
        await pool.execute(
            "UPDATE agent_tokens SET scopes = $2 WHERE token_hash = $1", digest, token_scopes
        )
        effective = frozenset(token_scopes) & frozenset(agent_scopes)
        who = Principal(agent_id=owner, scopes=effective, is_admin="admin" in effective)
        r = await client.post("/tasks", json=PUBLISHES, headers=agent["headers"])
        case = (token_scopes, agent_scopes, r.text)
        if not who.has("tasks:write"):
            assert r.status_code == 403, case
            assert r.json()["error"]["details"] == {"required_scope": "tasks:write"}, case
        elif not who.has("events:publish"):
            assert r.status_code == 403, case
            assert r.json()["error"]["details"] == {"required_scopes": ["events:publish"]}, case
        else:
            assert r.status_code == 201, case
            written += 1
        assert await _written(pool, agent["agent_id"]) == (written, written, written), case
    # admin on both sides (4 x 4 ways for the other two scopes), or without it both scopes on
    # both sides (3 ways to lack admin): both outcomes were exercised
    assert written == 16 + 3


async def test_the_quota_answers_after_the_scopes(
    app: Any, client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool, settings: Any
) -> None:
    app.state.deps.settings = settings.replace(max_tasks_per_agent=1)
    plain = await make_agent(["tasks:write"])
    assert (await client.post("/tasks", json=CRON_TASK, headers=plain["headers"])).is_success
    r = await client.post("/tasks", json=PUBLISHES, headers=plain["headers"])
    assert r.status_code == 403  # the tool's scope is missing: said before the limit
    r = await client.post("/tasks", json=CRON_TASK, headers=plain["headers"])
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "limit_exceeded"
    assert await _written(pool, plain["agent_id"]) == (1, 1, 1)


async def test_a_replay_answers_the_first_response_byte_for_byte(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    owner = await make_agent(["tasks:read", "tasks:write"])
    h = {**owner["headers"], "idempotency-key": "replay-1"}  # any case, as any header
    first = await client.post("/tasks", json=CRON_TASK, headers=h)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    replay = await client.post("/tasks", json=CRON_TASK, headers=h)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["content-type"] == first.headers["content-type"]
    assert replay.content == first.content
    r = await client.post(
        "/tasks", json=CRON_TASK, headers={**owner["headers"], "Idempotency-Key": ""}
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "header.Idempotency-Key"


def test_the_idempotency_key_is_documented_as_a_header_parameter(app: Any) -> None:
    operation = app.openapi()["paths"]["/tasks"]["post"]
    assert operation["parameters"] == [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": operation["parameters"][0]["description"],
                "title": "Idempotency-Key",
            },
            "description": "1-200 characters; a retried request with the same key and body "
            "returns the first response instead of creating a second task (409 with another "
            "body).",
        }
    ]
    assert operation["security"] == [{"HTTPBearer": []}]
