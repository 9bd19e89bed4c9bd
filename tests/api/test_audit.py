"""GET /audit: who did what to which object, when, from which request; filters and paging."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
from samples import CRON_TASK

from ordinaut.clock import FrozenClock

TASK_RW = ["tasks:read", "tasks:write", "runs:read"]


async def _create(client: httpx.AsyncClient, h: dict[str, str]) -> tuple[dict[str, Any], str]:
    r = await client.post("/tasks", json=CRON_TASK, headers=h)
    assert r.status_code == 201, r.text
    return r.json(), r.headers["X-Request-ID"]


async def test_an_entry_says_who_did_what_to_which_object_when_and_in_which_request(
    client: httpx.AsyncClient, make_agent: Any, clock: FrozenClock
) -> None:
    agent = await make_agent(TASK_RW)
    h = agent["headers"]
    task, created_rid = await _create(client, h)
    clock.advance(60)
    paused = await client.post(f"/tasks/{task['id']}/pause", headers=h)
    assert paused.status_code == 200, paused.text
    r = await client.get("/audit", params={"subject_type": "task"}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 2
    assert body["has_more"] is False
    newest, oldest = body["items"]
    assert newest["action"] == "task.paused"
    assert newest["request_id"] == paused.headers["X-Request-ID"]
    assert newest["created_at"] == "2026-03-02T12:01:00Z"
    assert oldest == {
        "id": oldest["id"],
        "created_at": "2026-03-02T12:00:00Z",
        "actor_id": agent["agent_id"],
        "action": "task.created",
        "subject_type": "task",
        "subject_id": task["id"],
        "owner_id": None,
        "request_id": created_rid,
        "details": {},
    }


async def test_filters_narrow_and_pages_walk_newest_first(
    client: httpx.AsyncClient, make_agent: Any, clock: FrozenClock
) -> None:
    agent = await make_agent(TASK_RW)
    h = agent["headers"]
    first, _ = await _create(client, h)
    clock.advance(1800)
    second, _ = await _create(client, h)
    await client.post(f"/tasks/{second['id']}/pause", headers=h)
    await client.post(f"/tasks/{second['id']}/resume", headers=h)

    async def actions(**params: Any) -> list[str]:
        r = await client.get("/audit", params={"subject_type": "task", **params}, headers=h)
        assert r.status_code == 200, r.text
        return [e["action"] for e in r.json()["items"]]

    assert await actions() == ["task.resumed", "task.paused", "task.created", "task.created"]
    assert await actions(action="task.created") == ["task.created", "task.created"]
    assert await actions(action="task.p*") == ["task.paused"]
    assert await actions(action="task.%") == []  # LIKE wildcards are plain text
    assert await actions(subject_id=first["id"]) == ["task.created"]
    assert await actions(subject_type="run") == []
    assert await actions(actor=agent["agent_id"]) == await actions()
    # the agent's own token, issued before any of this, is in its log too
    assert await actions(subject_type="agent") == ["agent.token_issued"]
    assert await actions(**{"from": "2026-03-02T12:15:00Z"}) == [
        "task.resumed",
        "task.paused",
        "task.created",
    ]
    assert await actions(until="2026-03-02T12:15:00+00:00") == ["task.created"]
    tasks_only = {"subject_type": "task"}
    page = (
        await client.get("/audit", params={**tasks_only, "limit": 3, "offset": 2}, headers=h)
    ).json()
    assert [e["action"] for e in page["items"]] == ["task.created", "task.created"]
    assert page["total"] == 4
    assert page["has_more"] is False
    page = (await client.get("/audit", params={**tasks_only, "limit": 1}, headers=h)).json()
    assert page["has_more"] is True
    assert page["limit"] == 1


async def test_bad_filters_are_422_naming_the_field(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    h = (await make_agent(TASK_RW))["headers"]
    for params, field in (
        ({"from": "2026-03-02T12:00:00"}, "from"),
        ({"from": "2026-03-02T12:00:00Z", "until": "2026-03-02T11:00:00Z"}, "until"),
        ({"actor": "nobody"}, "query.actor"),
        ({"subject_id": "x"}, "query.subject_id"),
        ({"action": "a" * 101}, "query.action"),
        ({"limit": 0}, "query.limit"),
    ):
        r = await client.get("/audit", params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        body = r.json()
        assert body["error"]["details"][0]["field"] == field, body
        assert body["request_id"]
    assert (await client.get("/audit")).status_code == 401


async def test_agents_see_their_own_entries_and_admins_see_everyone(
    client: httpx.AsyncClient, make_agent: Any, admin: dict[str, Any]
) -> None:
    alice = await make_agent(TASK_RW, name="alice")
    bob = await make_agent(TASK_RW, name="bob")
    a_task, _ = await _create(client, alice["headers"])
    await _create(client, bob["headers"])
    seen = (await client.get("/audit", headers=alice["headers"])).json()
    assert {e["actor_id"] for e in seen["items"]} == {alice["agent_id"]}
    # asking for another agent's entries shows nothing, not their entries
    other = await client.get("/audit", params={"actor": bob["agent_id"]}, headers=alice["headers"])
    assert other.status_code == 200
    assert other.json()["total"] == 0
    everyone = (await client.get("/audit", headers=admin["headers"])).json()
    actors = {e["actor_id"] for e in everyone["items"]}
    assert {alice["agent_id"], bob["agent_id"]} <= actors
    only_bob = (
        await client.get(
            "/audit",
            params={"actor": bob["agent_id"], "subject_type": "task"},
            headers=admin["headers"],
        )
    ).json()
    assert [e["action"] for e in only_bob["items"]] == ["task.created"]
    assert only_bob["items"][0]["subject_id"] != a_task["id"]


async def test_audit_rows_are_read_from_the_table_the_mutations_write(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    agent = await make_agent(TASK_RW)
    await _create(client, agent["headers"])
    rows = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE actor_id = $1", uuid.UUID(agent["agent_id"])
    )
    listed = (await client.get("/audit", headers=agent["headers"])).json()
    assert listed["total"] == rows == 2  # the token issued to it, the task it created


async def test_an_agent_sees_what_an_admin_did_to_it(
    client: httpx.AsyncClient, make_agent: Any, admin: dict[str, Any]
) -> None:
    alice = await make_agent(TASK_RW, name="alice")
    r = await client.put(
        f"/agents/{alice['agent_id']}", json={"name": "alice2"}, headers=admin["headers"]
    )
    assert r.status_code == 200, r.text
    log = await client.get("/audit", params={"action": "agent.updated"}, headers=alice["headers"])
    (entry,) = log.json()["items"]
    assert entry["actor_id"] == admin["agent_id"]
    assert entry["owner_id"] == alice["agent_id"]
    assert entry["subject_id"] == alice["agent_id"]
    assert entry["request_id"] == r.headers["X-Request-ID"]
