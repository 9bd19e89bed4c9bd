"""Runs over HTTP: a task runs through tick + worker, then history, stats, retry, cancel."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import httpx
from samples import CRON_TASK, FAILING_PAYLOAD

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick
from ordinaut.worker import Worker


async def test_run_history_stats_retry_and_cancel(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write", "runs:read"])
    h = agent["headers"]
    ok = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()
    bad = (
        await client.post(
            "/tasks", json={**CRON_TASK, "payload": FAILING_PAYLOAD, "max_retries": 0}, headers=h
        )
    ).json()
    for tid in (ok["id"], bad["id"]):
        r = await client.post(f"/tasks/{tid}/run_now", headers=h)
        assert r.status_code == 202, r.text
    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    assert await worker.run_once() == 2
    runs = (await client.get("/runs", headers=h)).json()
    assert runs["total"] == 2
    failed = (await client.get("/runs", params={"success": "false"}, headers=h)).json()
    assert [r["task_id"] for r in failed["items"]] == [bad["id"]]
    assert failed["items"][0]["status"] == "dead_letter"
    latest = (await client.get(f"/runs/task/{ok['id']}/latest", headers=h)).json()
    assert latest["status"] == "succeeded"
    assert latest["trigger"] == "run_now"
    assert latest["step_results"][0]["output"] == {"text": "weather in Chisinau"}
    stats = (await client.get(f"/runs/task/{ok['id']}/stats", headers=h)).json()
    assert stats["succeeded"] == 1
    assert stats["success_rate"] == 1.0
    summary = (await client.get("/runs/stats/summary", headers=h)).json()
    assert summary["runs"]["total"] == 2
    assert summary["tasks"]["total"] == 2
    run_id = failed["items"][0]["id"]
    retried = await client.post(f"/runs/{run_id}/retry", headers=h)
    assert retried.status_code == 202
    assert retried.json()["status"] == "queued"
    assert retried.json()["attempt"] == 2
    again = await client.post(f"/runs/{latest['id']}/retry", headers=h)
    assert again.status_code == 409
    canceled = await client.post(f"/runs/{run_id}/cancel", headers=h)
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert await pool.fetchval("SELECT count(*) FROM due_work") == 0
    other = await make_agent(["runs:read"])
    assert (await client.get(f"/runs/{run_id}", headers=other["headers"])).status_code == 404


async def test_tick_then_worker_runs_a_scheduled_slot(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write", "runs:read"])
    h = agent["headers"]
    task = (
        await client.post(
            "/tasks",
            json={**CRON_TASK, "schedule_expr": "*/10 * * * *", "timezone": "UTC"},
            headers=h,
        )
    ).json()
    clock.advance(600)
    await tick(pool, settings.replace(lookahead_s=5), clock)
    worker = Worker(pool, settings, clock, worker_id="w")
    # 12:00 (created at that instant, now a misfire coalesced by run_once) and 12:10
    assert await worker.run_once() == 2
    runs = (await client.get("/runs", params={"task_id": task["id"]}, headers=h)).json()
    assert [r["scheduled_for"] for r in runs["items"]] == [
        "2026-03-02T12:10:00Z",
        "2026-03-02T12:00:00Z",
    ]
    assert {r["status"] for r in runs["items"]} == {"succeeded"}
