"""Secrets: write-only, encrypted at rest, usable in tool arguments, never recorded."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import httpx

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

VALUE = "sk-live-5f2b9c0e-very-secret"


async def test_secret_reaches_the_tool_and_nothing_else(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write", "runs:read"])
    h = agent["headers"]
    r = await client.put("/secrets/API_KEY", json={"value": VALUE}, headers=h)
    assert r.status_code == 204, r.text
    listed = (await client.get("/secrets", headers=h)).json()["items"]
    assert [s["name"] for s in listed] == ["API_KEY"]
    assert VALUE not in str(listed)
    stored = await pool.fetchval("SELECT ciphertext FROM agent_secrets")
    assert VALUE.encode() not in bytes(stored)  # encrypted at rest
    task = {
        "title": "uses a secret",
        "schedule_kind": "event",
        "schedule_expr": "never",
        "payload": {
            "params": {},
            "pipeline": [
                {
                    "id": "call",
                    "uses": "echo",
                    "with": {"auth": "Bearer ${secrets.API_KEY}", "n": 1},
                }
            ],
        },
    }
    tid = (await client.post("/tasks", json=task, headers=h)).json()["id"]
    await client.post(f"/tasks/{tid}/run_now", headers=h)
    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    assert await worker.run_once() == 1
    run = (await client.get(f"/runs/task/{tid}/latest", headers=h)).json()
    assert run["status"] == "succeeded", run
    assert VALUE not in str(run)
    assert run["step_results"][0]["input"]["auth"] == "Bearer ***"
    dumped = (
        await pool.fetchval("SELECT string_agg(payload::text, '') FROM outbox")
        + str(await pool.fetch("SELECT * FROM runs"))
        + str(await pool.fetch("SELECT * FROM audit_log"))
    )
    assert VALUE not in dumped


async def test_secret_names_are_checked_and_other_agents_cannot_see_them(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    alice = await make_agent(["tasks:write"])
    bob = await make_agent(["tasks:write"])
    bad = await client.put("/secrets/9bad-name", json={"value": "x"}, headers=alice["headers"])
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "name"
    await client.put("/secrets/TOKEN", json={"value": "x"}, headers=alice["headers"])
    assert (await client.get("/secrets", headers=bob["headers"])).json()["items"] == []
    gone = await client.delete("/secrets/TOKEN", headers=bob["headers"])
    assert gone.status_code == 404
    assert (await client.delete("/secrets/TOKEN", headers=alice["headers"])).status_code == 204
