"""Hostile tenants (issue 17): what one agent's tasks can do to another agent's share.

Event fork bombs stop at a causation depth and a per-agent budget of runs; streams are capped
per agent; a deactivated agent's (or a descoped agent's) tasks stop; the rate limiter cannot be
dodged with junk tokens and is shared through Redis; canceled tasks count toward the quota.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from ordinaut.api import create_app
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick
from ordinaut.store import agents
from ordinaut.worker import Worker

ALL = ["tasks:read", "tasks:write", "runs:read", "events:publish"]


def fork_task(topic: str = "fork") -> dict[str, Any]:
    """A task on ``topic`` that publishes ``topic`` twice: without limits it never stops."""
    publish = {"uses": "event.publish", "with": {"topic": topic, "payload": {}}}
    return {
        "title": "fork",
        "schedule_kind": "event",
        "schedule_expr": topic,
        "max_retries": 0,
        "overlap_policy": "allow",
        "payload": {"params": {}, "pipeline": [{"id": "a", **publish}, {"id": "b", **publish}]},
    }


def echo_task(**extra: Any) -> dict[str, Any]:
    return {
        "title": "echo",
        "schedule_kind": "cron",
        "schedule_expr": "0 0 1 1 *",
        "payload": {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
        **extra,
    }


def _worker(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> Worker:
    return Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))


async def _drain(worker: Worker, rounds: int = 12) -> None:
    for _ in range(rounds):
        if not await worker.run_once():
            return


# --- 4. event fork bomb ----------------------------------------------------------------------


async def test_a_task_publishing_its_own_topic_stops_at_the_event_depth_limit(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    limited = settings.replace(max_event_depth=3)
    app.state.deps.settings = limited
    agent = await make_agent(ALL)
    h = agent["headers"]
    assert (await client.post("/tasks", json=fork_task(), headers=h)).status_code == 201
    assert (await client.post("/events", json={"topic": "fork"}, headers=h)).status_code == 202
    await _drain(_worker(pool, limited, clock))
    # 1 + 2 + 4 + 8 runs (events at depth 0..3); the 8 runs at depth 3 may not publish depth 4
    assert await pool.fetchval("SELECT count(*) FROM runs") == 15
    assert await pool.fetchval("SELECT count(*) FROM due_work") == 0
    depths = await pool.fetch("SELECT depth, count(*) AS n FROM events GROUP BY 1 ORDER BY 1")
    assert [(r["depth"], r["n"]) for r in depths] == [(0, 1), (1, 2), (2, 4), (3, 8)]
    failed = await pool.fetch("SELECT error, step_results FROM runs WHERE status = 'dead_letter'")
    assert len(failed) == 8
    for run in failed:
        step = run["step_results"][0]
        assert step["status"] == "failed"
        assert step["error"]["code"] == "event_depth_exceeded"
        assert "max_event_depth" in step["error"]["message"]


async def test_runs_created_per_agent_are_rate_limited_across_run_now_and_events(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    app.state.deps.settings = settings.replace(max_runs_per_minute_per_agent=3)
    greedy, other = await make_agent(ALL), await make_agent(ALL)
    task = (await client.post("/tasks", json=echo_task(), headers=greedy["headers"])).json()
    for _ in range(2):
        r = await client.post(f"/tasks/{task['id']}/run_now", headers=greedy["headers"])
        assert r.status_code == 202, r.text
    # an event matching two tasks: one run fits in the minute's budget, the other is refused
    sub = {**fork_task("orders"), "payload": echo_task()["payload"]}
    for _ in range(2):
        assert (await client.post("/tasks", json=sub, headers=greedy["headers"])).status_code == 201
    r = await client.post("/events", json={"topic": "orders"}, headers=greedy["headers"])
    assert r.status_code == 202, r.text
    assert (r.json()["tasks_matched"], r.json()["runs_queued"]) == (2, 1)
    assert r.json()["runs_refused"] == 1
    throttled = await pool.fetchrow(
        "SELECT tenant_id, payload FROM outbox WHERE event_type = 'runs.throttled'"
    )
    assert throttled is not None
    assert str(throttled["tenant_id"]) == greedy["agent_id"]
    assert throttled["payload"]["refused"] == 1
    assert throttled["payload"]["limit"] == "max_runs_per_minute_per_agent"
    r = await client.post(f"/tasks/{task['id']}/run_now", headers=greedy["headers"])
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["details"]["limit"] == "max_runs_per_minute_per_agent"
    assert await pool.fetchval("SELECT count(*) FROM runs") == 3
    # another agent has its own budget
    mine = (await client.post("/tasks", json=echo_task(), headers=other["headers"])).json()
    r = await client.post(f"/tasks/{mine['id']}/run_now", headers=other["headers"])
    assert r.status_code == 202
    # the next minute has a fresh budget
    clock.advance(60)
    r = await client.post(f"/tasks/{task['id']}/run_now", headers=greedy["headers"])
    assert r.status_code == 202


async def test_runs_a_pipeline_fans_out_past_the_budget_are_refused_and_reported(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    budget = settings.replace(max_runs_per_minute_per_agent=4, max_event_depth=0)
    app.state.deps.settings = budget
    agent = await make_agent(ALL)
    h = agent["headers"]
    assert (await client.post("/tasks", json=fork_task(), headers=h)).status_code == 201
    assert (await client.post("/events", json={"topic": "fork"}, headers=h)).status_code == 202
    await _drain(_worker(pool, budget, clock))
    # the outside event's run, then 2 + 1 from the pipelines until the minute's 4 are spent:
    # events 1 -> 2 -> 4 (3 of their runs refused) -> 2 (both runs refused)
    assert await pool.fetchval("SELECT count(*) FROM runs") == 4
    assert await pool.fetchval("SELECT count(*) FROM events") == 1 + 2 + 4 + 2
    refused = await pool.fetch(
        "SELECT payload FROM outbox WHERE event_type = 'runs.throttled' ORDER BY seq"
    )
    assert sum(r["payload"]["refused"] for r in refused) == 3 + 2  # none lost silently
    assert await pool.fetchval("SELECT count(*) FROM due_work") == 0


# --- 7. deactivated and descoped agents ------------------------------------------------------


async def test_a_deactivated_agents_tasks_stop_everywhere(
    client: httpx.AsyncClient,
    make_agent: Any,
    admin: dict[str, Any],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    publisher, c = await make_agent(ALL), await make_agent(ALL)
    r = await client.post(
        "/events/shared-topics", json={"pattern": "prices.*"}, headers=admin["headers"]
    )
    assert r.status_code == 201
    shared = {**fork_task("shared:prices.*"), "payload": echo_task()["payload"]}
    assert (await client.post("/tasks", json=shared, headers=c["headers"])).status_code == 201
    cron = echo_task(schedule_expr="* * * * *")
    cron_id = (await client.post("/tasks", json=cron, headers=c["headers"])).json()["id"]
    manual = (await client.post("/tasks", json=echo_task(), headers=c["headers"])).json()
    queued = await client.post(f"/tasks/{manual['id']}/run_now", headers=c["headers"])
    assert queued.status_code == 202
    r = await client.put(
        f"/agents/{c['agent_id']}", json={"is_active": False}, headers=admin["headers"]
    )
    assert r.status_code == 200, r.text
    # events on a shared topic no longer reach C's subscription
    r = await client.post("/events", json={"topic": "prices.eur"}, headers=publisher["headers"])
    assert r.status_code == 202
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM events WHERE tenant_id = $1", uuid.UUID(c["agent_id"])
        )
        == 0
    )
    # the scheduler materializes nothing for C
    await tick(pool, settings.replace(lookahead_s=120), clock)
    assert (
        await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", uuid.UUID(cron_id)) == 0
    )
    # the run queued before the deactivation is not executed
    await _drain(_worker(pool, settings, clock))
    run = await pool.fetchrow(
        "SELECT status, error, step_results FROM runs WHERE task_id = $1", uuid.UUID(manual["id"])
    )
    assert run["status"] == "canceled"
    assert run["error"]["code"] == "owner_inactive"
    assert run["step_results"] == []


async def test_a_run_whose_owner_lost_a_scope_cannot_use_it(
    client: httpx.AsyncClient,
    make_agent: Any,
    admin: dict[str, Any],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    c = await make_agent(ALL)
    pub = {
        **echo_task(),
        "max_retries": 0,
        "payload": {
            "params": {},
            "pipeline": [
                {"id": "first", "uses": "echo", "with": {"ok": True}},
                {"id": "tell", "uses": "event.publish", "with": {"topic": "news", "payload": {}}},
            ],
        },
    }
    task = (await client.post("/tasks", json=pub, headers=c["headers"])).json()
    await client.post("/tasks", json=fork_task("news"), headers=c["headers"])
    assert (
        await client.post(f"/tasks/{task['id']}/run_now", headers=c["headers"])
    ).status_code == 202
    scopes = ["tasks:read", "tasks:write", "runs:read"]
    r = await client.put(
        f"/agents/{c['agent_id']}", json={"scopes": scopes}, headers=admin["headers"]
    )
    assert r.status_code == 200
    await _drain(_worker(pool, settings, clock))
    run = await pool.fetchrow(
        "SELECT status, step_results FROM runs WHERE task_id = $1", uuid.UUID(task["id"])
    )
    assert run["status"] == "dead_letter"
    first, tell = run["step_results"]
    assert first["status"] == "succeeded"
    assert tell["status"] == "failed"
    assert tell["error"]["code"] == "missing_scope"
    assert "events:publish" in tell["error"]["message"]
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    assert await pool.fetchval("SELECT count(*) FROM runs") == 1


# --- 8. the rate limiter ---------------------------------------------------------------------


async def test_junk_tokens_share_the_client_addresss_budget(
    settings: Settings, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    app = create_app(settings.replace(rate_limit_per_minute=5), clock=clock, pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        statuses = []
        for _ in range(8):
            junk = {"Authorization": f"Bearer ord_at_{uuid.uuid4().hex}"}
            statuses.append((await c.get("/tasks", headers=junk)).status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 3
    await app.state.deps.close()


async def test_a_revoked_token_cannot_spend_its_agents_budget(
    settings: Settings, pool: asyncpg.Pool, clock: FrozenClock, make_agent: Any
) -> None:
    app = create_app(settings.replace(rate_limit_per_minute=6), clock=clock, pool=pool)
    old = await make_agent(["tasks:read"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/tasks", headers=old["headers"])).status_code == 200
        r = await c.post(
            "/agents/auth/revoke", json={"token": old["token"]}, headers=old["headers"]
        )
        assert r.status_code == 204
        # the dead token's requests count against its address from its first 401 on
        for _ in range(4):
            assert (await c.get("/tasks", headers=old["headers"])).status_code == 401
    async with pool.acquire() as conn:
        pair = await agents.issue_tokens(conn, uuid.UUID(old["agent_id"]), clock.now(), settings)
    fresh = {"Authorization": f"Bearer {pair.access_token}"}
    elsewhere = httpx.ASGITransport(app=app, client=("127.0.0.2", 4000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://t") as c:
        # of the agent's 6, the old token spent 3 (a request, the revoke, its first 401), this
        # token's first request 1: two are left. Had every 401 counted, none would be.
        statuses = [(await c.get("/tasks", headers=fresh)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
    await app.state.deps.close()


async def test_the_auth_routes_have_a_stricter_limit_per_address(
    settings: Settings, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    app = create_app(
        settings.replace(rate_limit_per_minute=100, auth_rate_limit_per_minute=3),
        clock=clock,
        pool=pool,
    )
    body = {"agent_id": str(uuid.uuid4()), "agent_secret": "x" * 20}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        statuses = [(await c.post("/agents/auth/token", json=body)).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        r = await c.post("/agents/auth/token", json=body)
        assert r.json()["error"]["details"]["limit"] == "auth_rate_limit_per_minute"
    await app.state.deps.close()


async def test_api_processes_sharing_redis_share_one_budget(
    settings: Settings,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    make_agent: Any,
    servers: dict[str, str],
) -> None:
    agent = await make_agent(["tasks:read"])
    shared = settings.replace(
        rate_limit_per_minute=4, rate_limit_store="redis", rate_limit_prefix=uuid.uuid4().hex
    )
    one = create_app(shared, clock=clock, pool=pool)
    two = create_app(shared, clock=clock, pool=pool)
    statuses = []
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=one), base_url="http://t") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=two), base_url="http://t") as b,
    ):
        for c in (a, b, a, b, a, b):
            statuses.append((await c.get("/tasks", headers=agent["headers"])).status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]
    await one.state.deps.close()
    await two.state.deps.close()


async def test_the_limiter_falls_back_to_memory_when_redis_is_down(
    settings: Settings,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    make_agent: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = await make_agent(["tasks:read"])
    # nothing listens on port 1 of the loopback address: every Redis call fails at once
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    app = create_app(
        settings.replace(rate_limit_per_minute=2, rate_limit_store="redis"),
        clock=clock,
        pool=pool,
        redis=dead,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        statuses = [(await c.get("/tasks", headers=agent["headers"])).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert any("rate limiter" in r.getMessage() for r in caplog.records)
    await app.state.deps.close()
    await dead.aclose()


def test_an_unknown_rate_limit_store_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match="ORDINAUT_RATE_LIMIT_STORE"):
        create_app(settings.replace(rate_limit_store="postgres"))


# --- 9. canceled tasks count toward the task quota -------------------------------------------


async def test_canceled_tasks_count_toward_max_tasks_per_agent(
    app: FastAPI, client: httpx.AsyncClient, make_agent: Any, settings: Settings
) -> None:
    app.state.deps.settings = settings.replace(max_tasks_per_agent=2)
    agent = await make_agent(ALL)
    h = agent["headers"]
    ids = [
        (await client.post("/tasks", json=echo_task(), headers=h)).json()["id"] for _ in range(2)
    ]
    assert (await client.post(f"/tasks/{ids[0]}/cancel", headers=h)).status_code == 200
    r = await client.post("/tasks", json=echo_task(), headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "limit_exceeded"
    # deleting the canceled task frees its place
    assert (await client.delete(f"/tasks/{ids[0]}", headers=h)).status_code == 204
    assert (await client.post("/tasks", json=echo_task(), headers=h)).status_code == 201
