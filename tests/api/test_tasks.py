"""Tasks over HTTP: create, validation errors, tenancy, lifecycle, preview, idempotency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
from samples import CRON_TASK

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.store import agents, idempotency


async def test_create_get_list_and_next_run(
    client: httpx.AsyncClient, make_agent: Any, clock: FrozenClock
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write"])
    r = await client.post("/tasks", json=CRON_TASK, headers=agent["headers"])
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["status"] == "active"
    # the schedule in words, for the status page (the CLI's and MCP's words)
    assert task["schedule_text"] == "every weekday at 08:00 Europe/Chisinau"
    assert task["created_by"] == str(agent["agent_id"])
    # Monday 2026-03-02 12:00Z: next 08:00 Chisinau (UTC+2) is Tuesday 06:00Z.
    assert task["next_run_at"] == "2026-03-03T06:00:00Z"
    got = await client.get(f"/tasks/{task['id']}", headers=agent["headers"])
    assert got.json() == task
    listing = (await client.get("/tasks", headers=agent["headers"])).json()
    assert listing["total"] == 1
    assert listing["has_more"] is False
    assert listing["items"][0]["id"] == task["id"]


async def test_validation_errors_name_the_field(client: httpx.AsyncClient, make_agent: Any) -> None:
    agent = await make_agent(["tasks:read", "tasks:write"])
    cases = [
        ({"schedule_expr": "61 * * * *"}, "schedule_expr"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"schedule_expr": "0 0 30 2 *"}, "schedule_expr"),
        ({"schedule_kind": "rrule", "schedule_expr": "FREQ=SECONDLY"}, "schedule_expr"),
        (
            {"payload": {"params": {}, "pipeline": [{"id": "a", "uses": "nope.tool", "with": {}}]}},
            "payload",
        ),
        ({"priority": 10}, "priority"),
    ]
    for change, field in cases:
        r = await client.post("/tasks", json={**CRON_TASK, **change}, headers=agent["headers"])
        assert r.status_code == 422, (change, r.text)
        body = r.json()
        assert body["request_id"]
        fields = " ".join(str(d.get("field", d.get("loc", ""))) for d in body["error"]["details"])
        assert field in fields, (change, body)


async def test_tenancy_other_agents_task_is_404(client: httpx.AsyncClient, make_agent: Any) -> None:
    alice = await make_agent(["tasks:read", "tasks:write", "runs:read"])
    bob = await make_agent(["tasks:read", "tasks:write", "runs:read"])
    task = (await client.post("/tasks", json=CRON_TASK, headers=alice["headers"])).json()
    for method, path in [
        ("GET", f"/tasks/{task['id']}"),
        ("PATCH", f"/tasks/{task['id']}"),
        ("DELETE", f"/tasks/{task['id']}"),
        ("POST", f"/tasks/{task['id']}/pause"),
        ("POST", f"/tasks/{task['id']}/run_now"),
        ("GET", f"/tasks/{task['id']}/preview"),
        ("GET", f"/runs/task/{task['id']}/stats"),
    ]:
        kw: dict[str, Any] = {"json": {"title": "x"}} if method == "PATCH" else {}
        r = await client.request(method, path, headers=bob["headers"], **kw)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    assert (await client.get("/tasks", headers=bob["headers"])).json()["total"] == 0


async def test_scopes_are_enforced(client: httpx.AsyncClient, make_agent: Any) -> None:
    reader = await make_agent(["tasks:read"])
    r = await client.post("/tasks", json=CRON_TASK, headers=reader["headers"])
    assert r.status_code == 403
    assert (await client.get("/runs", headers=reader["headers"])).status_code == 403
    assert (await client.get("/tasks")).status_code == 401


async def test_lifecycle_pause_resume_cancel(client: httpx.AsyncClient, make_agent: Any) -> None:
    agent = await make_agent(["tasks:read", "tasks:write"])
    h = agent["headers"]
    task = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()
    tid = task["id"]
    paused = (await client.post(f"/tasks/{tid}/pause", headers=h)).json()
    assert paused["status"] == "paused"
    assert paused["next_run_at"] is None
    again = await client.post(f"/tasks/{tid}/pause", headers=h)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_transition"
    resumed = (await client.post(f"/tasks/{tid}/resume", headers=h)).json()
    assert resumed["status"] == "active"
    assert resumed["next_run_at"] == task["next_run_at"]
    snoozed = await client.post(f"/tasks/{tid}/snooze", json={"delay_seconds": 600}, headers=h)
    assert snoozed.status_code == 200
    assert snoozed.json()["snoozed_until"]
    canceled = (await client.post(f"/tasks/{tid}/cancel", headers=h)).json()
    assert canceled["status"] == "canceled"
    assert (await client.patch(f"/tasks/{tid}", json={"title": "x"}, headers=h)).status_code == 409
    assert (await client.delete(f"/tasks/{tid}", headers=h)).status_code == 204
    assert (await client.get(f"/tasks/{tid}", headers=h)).status_code == 404


async def test_update_revalidates_and_moves_the_cursor(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write"])
    h = agent["headers"]
    tid = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()["id"]
    bad = await client.patch(f"/tasks/{tid}", json={"schedule_expr": "nonsense"}, headers=h)
    assert bad.status_code == 422
    ok = await client.patch(
        f"/tasks/{tid}", json={"schedule_expr": "30 13 * * *", "timezone": "UTC"}, headers=h
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["next_run_at"] == "2026-03-02T13:30:00Z"
    put = await client.put(f"/tasks/{tid}", json={**CRON_TASK, "title": "renamed"}, headers=h)
    assert put.json()["title"] == "renamed"
    assert put.json()["next_run_at"] == "2026-03-03T06:00:00Z"
    # workers cache compiled pipelines per payload version: only a payload change bumps it
    version = "SELECT payload_version FROM tasks WHERE id = $1"
    assert await pool.fetchval(version, uuid.UUID(tid)) == 1
    steps = [{"id": "other", "uses": "echo", "with": {"x": 1}}]
    payload = {**CRON_TASK["payload"], "pipeline": steps}
    r = await client.patch(f"/tasks/{tid}", json={"payload": payload}, headers=h)
    assert r.status_code == 200, r.text
    assert await pool.fetchval(version, uuid.UUID(tid)) == 2


async def test_preview_routes_share_the_scheduler_code(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write"])
    h = agent["headers"]
    body = {
        "schedule_kind": "cron",
        "schedule_expr": "30 2 * * *",
        "timezone": "America/New_York",
        "from": "2026-03-06T00:00:00Z",
        "limit": 3,
    }
    r = await client.post("/schedules/preview", json=body, headers=h)
    assert r.status_code == 200, r.text
    # 2026-03-08 02:30 does not exist in New York: shifted forward by the gap to 03:30 EDT.
    assert r.json()["fire_times"] == [
        "2026-03-06T07:30:00Z",
        "2026-03-07T07:30:00Z",
        "2026-03-08T07:30:00Z",
    ]
    tid = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()["id"]
    p = await client.get(
        f"/tasks/{tid}/preview", params={"from": "2026-03-27T00:00:00Z", "limit": 2}, headers=h
    )
    # Chisinau moves to summer time on 2026-03-29: 08:00 is 06:00Z before, 05:00Z after.
    assert p.json()["fire_times"] == ["2026-03-27T06:00:00Z", "2026-03-30T05:00:00Z"]
    bad = await client.post(
        "/schedules/preview", json={**body, "schedule_expr": "* * *"}, headers=h
    )
    assert bad.status_code == 422


async def test_idempotency_key_and_dedupe(client: httpx.AsyncClient, make_agent: Any) -> None:
    agent = await make_agent(["tasks:read", "tasks:write"])
    h = {**agent["headers"], "Idempotency-Key": "create-1"}
    first, second = await asyncio.gather(
        client.post("/tasks", json=CRON_TASK, headers=h),
        client.post("/tasks", json=CRON_TASK, headers=h),
    )
    assert {first.status_code, second.status_code} == {201}
    assert first.json()["id"] == second.json()["id"]
    other = await client.post("/tasks", json={**CRON_TASK, "title": "other"}, headers=h)
    assert other.status_code == 409
    assert (await client.get("/tasks", headers=agent["headers"])).json()["total"] == 1
    d = {**CRON_TASK, "dedupe_key": "brief", "dedupe_window_seconds": 3600}
    assert (await client.post("/tasks", json=d, headers=agent["headers"])).status_code == 201
    dup = await client.post("/tasks", json=d, headers=agent["headers"])
    assert dup.status_code == 409
    assert "existing_task_id" in dup.json()["error"]["details"]


async def test_an_idempotency_key_is_remembered_for_its_ttl_then_forgotten(
    client: httpx.AsyncClient,
    make_agent: Any,
    clock: FrozenClock,
    settings: Settings,
    pool: asyncpg.Pool,
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write"])

    async def post(body: dict[str, Any]) -> httpx.Response:
        async with pool.acquire() as conn:  # a fresh token: a day passes in this test
            pair = await agents.issue_tokens(
                conn, uuid.UUID(agent["agent_id"]), clock.now(), settings
            )
        headers = {"Authorization": f"Bearer {pair.access_token}", "Idempotency-Key": "daily"}
        return await client.post("/tasks", json=body, headers=headers)

    first = await post(CRON_TASK)
    assert first.status_code == 201
    clock.advance(settings.idempotency_ttl_s - 1)
    replay = await post(CRON_TASK)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json()["id"] == first.json()["id"]
    clock.advance(2)  # past the TTL: the same key with another body creates a new task
    again = await post({**CRON_TASK, "title": "tomorrow"})
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert (await post({**CRON_TASK, "title": "tomorrow"})).json()["id"] == again.json()["id"]
    clock.advance(settings.idempotency_ttl_s + 1)
    assert await idempotency.prune(pool, expired_before=clock.now() - timedelta(hours=1)) == 1
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_validate_with_dry_run(client: httpx.AsyncClient, make_agent: Any) -> None:
    agent = await make_agent(["tasks:read"])
    r = await client.post(
        "/tasks/validate",
        json={"task": CRON_TASK, "dry_run": True, "sample_params": {"city": "Paris"}},
        headers=agent["headers"],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["valid"] is True
    assert "Paris" in str(body["steps"][0])
    bad = await client.post(
        "/tasks/validate",
        json={
            "payload": {
                "pipeline": [{"id": "a", "uses": "echo", "with": {"x": "${steps.b.output}"}}]
            }
        },
        headers=agent["headers"],
    )
    assert bad.status_code == 422


async def test_tool_scopes_are_enforced_on_create(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    publishes = {
        **CRON_TASK,
        "payload": {
            "params": {},
            "pipeline": [
                {"id": "p", "uses": "event.publish", "with": {"topic": "t.x", "payload": {}}}
            ],
        },
    }
    plain = await make_agent(["tasks:read", "tasks:write"])
    r = await client.post("/tasks", json=publishes, headers=plain["headers"])
    assert r.status_code == 403
    assert r.json()["error"]["details"] == {"required_scopes": ["events:publish"]}
    able = await make_agent(["tasks:read", "tasks:write", "events:publish"])
    assert (await client.post("/tasks", json=publishes, headers=able["headers"])).status_code == 201


async def test_list_searches_titles_literally_and_in_any_case(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write"])
    other = await make_agent(["tasks:read", "tasks:write"])
    titles = ["Morning briefing", "Evening BRIEFING", "100% uptime", "report_daily", "reportXdaily"]
    for title in titles:
        r = await client.post(
            "/tasks", json={**CRON_TASK, "title": title}, headers=agent["headers"]
        )
        assert r.status_code == 201, r.text
    await client.post("/tasks", json={**CRON_TASK, "title": "briefing"}, headers=other["headers"])

    async def found(search: str, **params: Any) -> list[str]:
        r = await client.get(
            "/tasks", params={"search": search, **params}, headers=agent["headers"]
        )
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == len(page["items"]) + page["offset"] or not page["items"]
        return sorted(t["title"] for t in page["items"])

    assert await found("briefing") == ["Evening BRIEFING", "Morning briefing"]  # not other's
    assert await found("%") == ["100% uptime"]  # % and _ are text, not wildcards
    assert await found("report_") == ["report_daily"]
    assert await found("nothing like it") == []
    # a list item says how the task last went; one task read alone does not carry that
    r = await client.get("/tasks", params={"search": "uptime"}, headers=agent["headers"])
    (item,) = r.json()["items"]
    assert (item["last_run_status"], item["last_run_at"], item["failures_24h"]) == (None, None, 0)
    alone = (await client.get(f"/tasks/{item['id']}", headers=agent["headers"])).json()
    assert "failures_24h" not in alone
    assert await found("briefing", limit=1, offset=5) == []  # an empty page still has a total
    r = await client.get(
        "/tasks", params={"search": "briefing", "offset": 5}, headers=agent["headers"]
    )
    assert r.json()["total"] == 2
    r = await client.get("/tasks", params={"search": "x" * 201}, headers=agent["headers"])
    assert r.status_code == 422
    assert "search" in r.text
