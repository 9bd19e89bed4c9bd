"""End to end: a value derived from a secret is stored nowhere (issue 17, finding 3)."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import httpx

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

VALUE = "sk-live-5f2b9c0e-very-secret"


async def test_derived_secrets_reach_no_run_record_event_or_outbox_row(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    agent = await make_agent(["tasks:read", "tasks:write", "runs:read", "events:publish"])
    h = agent["headers"]
    assert (await client.put("/secrets/K", json={"value": VALUE}, headers=h)).status_code == 204
    task = {
        "title": "leaks if it can",
        "schedule_kind": "event",
        "schedule_expr": "never",
        "payload": {
            "pipeline": [
                {
                    "id": "t",
                    "uses": "transform",
                    "with": {
                        "expr": "[substr(@, `0`, `6`), substr(@, `6`, `100`), reverse(@)]",
                        "input": "${secrets.K}",
                    },
                },
                {
                    "id": "p",
                    "uses": "event.publish",
                    "with": {
                        "topic": "leak.attempt",
                        "payload": {"t": "${steps.t.output}", "u": "${upper(secrets.K)}"},
                    },
                },
            ]
        },
    }
    created = await client.post("/tasks", json=task, headers=h)
    assert created.status_code == 201, created.text
    await client.post(f"/tasks/{created.json()['id']}/run_now", headers=h)
    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    assert await worker.run_once() == 1
    run = await pool.fetchrow("SELECT status::text, error FROM runs")
    assert run["status"] == "succeeded", run["error"]
    assert await pool.fetchval("SELECT count(*) FROM events WHERE topic = 'leak.attempt'") == 1
    dumped = ""
    for query in (
        "SELECT payload::text FROM outbox",
        "SELECT payload::text FROM events",
        "SELECT output::text, step_results::text, error::text FROM runs",
    ):
        dumped += str(await pool.fetch(query))
    assert "leak.attempt" in dumped
    for form in (VALUE, VALUE[:6], VALUE[6:], VALUE.upper(), VALUE[::-1]):
        assert form not in dumped
