"""An admin's view across agents: owner= on GET /tasks and GET /runs, retry and cancel of any
agent's run, every dead letter, and GET /admin/overview. Everyone else: 403 for owner=."""

from __future__ import annotations

import random
import uuid
from typing import Any

import asyncpg
import httpx
from samples import CRON_TASK, FAILING_PAYLOAD

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick
from ordinaut.store import heartbeats
from ordinaut.worker import Worker

TASK_RW = ["tasks:read", "tasks:write", "runs:read"]


async def _dead_letter(
    client: httpx.AsyncClient,
    h: dict[str, str],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> tuple[str, str]:
    """A task whose one run failed twice (max_retries 1): (task id, dead-lettered run id)."""
    body = {**CRON_TASK, "payload": FAILING_PAYLOAD, "max_retries": 1}
    task = (await client.post("/tasks", json=body, headers=h)).json()
    run = (await client.post(f"/tasks/{task['id']}/run_now", headers=h)).json()
    worker = Worker(
        pool, settings.replace(backoff_max_s=5), clock, worker_id="w", rng=random.Random(0)
    )
    assert await worker.run_once() == 1
    clock.advance(10)
    assert await worker.run_once() == 1
    r = await client.get(f"/runs/{run['run_id']}", headers=h)
    assert r.json()["status"] == "dead_letter", r.text
    return task["id"], run["run_id"]


async def test_owner_is_403_for_everyone_but_admins(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(TASK_RW)
    h = agent["headers"]
    for path in ("/tasks", "/runs", f"/runs/{uuid.uuid4()}"):
        for owner in (agent["agent_id"], "*"):
            r = await client.get(path, params={"owner": owner}, headers=h)
            assert r.status_code == 403, (path, owner, r.text)
            body = r.json()
            assert body["error"]["code"] == "forbidden"
            assert body["error"]["details"]["field"] == "query.owner"
    assert (await client.get("/admin/overview", headers=h)).status_code == 403


async def test_admins_list_one_agents_or_every_agents_tasks_and_runs(
    client: httpx.AsyncClient,
    make_agent: Any,
    admin: dict[str, Any],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    alice = await make_agent(TASK_RW, name="alice")
    bob = await make_agent(TASK_RW, name="bob")
    a_task = (await client.post("/tasks", json=CRON_TASK, headers=alice["headers"])).json()
    b_task, b_dead = await _dead_letter(client, bob["headers"], pool, settings, clock)
    await client.post(f"/tasks/{a_task['id']}/run_now", headers=alice["headers"])
    ah = admin["headers"]

    async def ids(path: str, **params: Any) -> list[str]:
        r = await client.get(path, params=params, headers=ah)
        assert r.status_code == 200, r.text
        assert r.json()["total"] == len(r.json()["items"])
        return sorted(item["id"] for item in r.json()["items"])

    assert await ids("/tasks") == []  # without owner: the admin's own, like everyone
    assert await ids("/tasks", owner=alice["agent_id"]) == [a_task["id"]]
    assert await ids("/tasks", owner="*") == sorted([a_task["id"], b_task])
    assert await ids("/tasks", owner=str(uuid.uuid4())) == []
    all_runs = (await client.get("/runs", params={"owner": "*"}, headers=ah)).json()
    assert {r["owner_id"] for r in all_runs["items"]} == {alice["agent_id"], bob["agent_id"]}
    assert await ids("/runs", owner="*", status="dead_letter") == [b_dead]
    assert await ids("/runs", owner=alice["agent_id"], status="dead_letter") == []
    one = await client.get(f"/runs/{b_dead}", params={"owner": "*"}, headers=ah)
    assert one.status_code == 200, one.text
    assert one.json()["step_results"], one.text
    assert (await client.get(f"/runs/{b_dead}", headers=ah)).status_code == 404
    bad = await client.get("/runs", params={"owner": "bob"}, headers=ah)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "query.owner"


async def test_admins_retry_and_cancel_any_agents_run_and_the_owner_sees_it(
    client: httpx.AsyncClient,
    make_agent: Any,
    admin: dict[str, Any],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    bob = await make_agent(TASK_RW, name="bob")
    eve = await make_agent(TASK_RW, name="eve")
    _, dead = await _dead_letter(client, bob["headers"], pool, settings, clock)
    # another agent cannot touch it: 404 exactly as a missing run
    assert (await client.post(f"/runs/{dead}/retry", headers=eve["headers"])).status_code == 404
    r = await client.post(f"/runs/{dead}/retry", headers=admin["headers"])
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    assert r.json()["owner_id"] == bob["agent_id"]
    assert await pool.fetchval("SELECT count(*) FROM due_work WHERE run_id = $1", uuid.UUID(dead))
    r = await client.post(f"/runs/{dead}/cancel", headers=admin["headers"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled", r.text
    assert (await client.get(f"/runs/{dead}", headers=bob["headers"])).json()["status"] == (
        "canceled"
    )
    missing = await client.post(f"/runs/{uuid.uuid4()}/retry", headers=admin["headers"])
    assert missing.status_code == 404
    # bob's audit log shows what the admin did to his run, and who did it
    log = (await client.get("/audit", params={"subject_id": dead}, headers=bob["headers"])).json()
    assert [(e["action"], e["actor_id"], e["owner_id"]) for e in log["items"]] == [
        ("run.cancel", admin["agent_id"], bob["agent_id"]),
        ("run.retry", admin["agent_id"], bob["agent_id"]),
    ]
    assert (await client.get("/audit", params={"subject_id": dead}, headers=eve["headers"])).json()[
        "total"
    ] == 0


async def test_overview_shows_the_queue_schedulers_and_workers_with_their_runs(
    client: httpx.AsyncClient,
    make_agent: Any,
    admin: dict[str, Any],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    agent = await make_agent(TASK_RW)
    h = agent["headers"]
    tasks = [(await client.post("/tasks", json=CRON_TASK, headers=h)).json() for _ in range(3)]
    runs = [
        (await client.post(f"/tasks/{t['id']}/run_now", headers=h)).json()["run_id"] for t in tasks
    ]
    await tick(pool, settings, clock, name="scheduler@test")
    # one run leased by a worker that beat just now, another row waiting in the future
    leased = await pool.fetchval(
        "UPDATE due_work SET state = 'running', lease_token = gen_random_uuid(),"
        " leased_until = $1::timestamptz + interval '30 s', leased_by = 'w1'"
        " WHERE run_id = $2 RETURNING run_id",
        clock.now(),
        uuid.UUID(runs[0]),
    )
    await pool.execute(
        "UPDATE due_work SET run_at = $1::timestamptz + interval '1 hour' WHERE run_id = $2",
        clock.now(),
        uuid.UUID(runs[1]),
    )
    for worker_id, seen_s in (("w1", 1), ("gone", 3600)):
        await heartbeats.beat(
            pool,
            worker_id=worker_id,
            hostname="host",
            pid=7,
            started_at=clock.now().replace(hour=0),
            now=clock.now().replace(second=0) if seen_s == 1 else clock.now().replace(hour=11),
            in_flight=1 if worker_id == "w1" else 0,
        )
    clock.advance(20)
    r = await client.get("/admin/overview", headers=admin["headers"])
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["queue"] == {"due": 1, "scheduled": 1, "running": 1, "oldest_due_age_s": 20.0}
    assert [s["name"] for s in doc["schedulers"]] == ["scheduler@test"]
    assert doc["schedulers"][0]["age_s"] == 20.0
    assert [(w["worker_id"], w["live"], w["runs"]) for w in doc["workers"]] == [
        ("w1", True, [str(leased)]),
        ("gone", False, []),
    ]
    assert doc["live_workers"] == 1
    assert doc["in_flight"] == 1
