"""What POST /events writes for a topic no admin shared (one statement, issue 12): the event
with its tasks_matched, one run per task its filter lets through, the run.queued events before
the event.received (and runs.throttled) lifecycle events, the run budget charged; and for an
event id seen before, nothing at all."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from ordinaut.config import Settings

SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]


def event_task(pattern: str, **payload: Any) -> dict[str, Any]:
    return {
        "title": f"on {pattern}",
        "schedule_kind": "event",
        "schedule_expr": pattern,
        "payload": {
            "params": {"min": 100},
            "pipeline": [{"id": "got", "uses": "echo", "with": {}}],
            **payload,
        },
    }


async def _writes(pool: asyncpg.Pool, tenant: uuid.UUID) -> dict[str, Any]:
    return {
        "events": [
            dict(r)
            for r in await pool.fetch(
                "SELECT event_id, tasks_matched FROM events WHERE tenant_id = $1 ORDER BY seq",
                tenant,
            )
        ],
        "outbox": [
            r["event_type"]
            for r in await pool.fetch(
                "SELECT event_type FROM outbox WHERE tenant_id = $1 "
                "AND event_type IN ('run.queued', 'event.received', 'runs.throttled') "
                "ORDER BY seq",
                tenant,
            )
        ],
        "runs": await pool.fetchval("SELECT count(*) FROM runs WHERE owner_id = $1", tenant),
        "due": await pool.fetchval("SELECT count(*) FROM due_work WHERE owner_id = $1", tenant),
        "quota": await pool.fetchval("SELECT used FROM run_quota WHERE agent_id = $1", tenant),
    }


async def test_one_statement_writes_everything_once_in_order(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    app.state.deps.settings = settings.replace(max_runs_per_minute_per_agent=3)
    agent = await make_agent(SCOPES)
    h, tenant = agent["headers"], uuid.UUID(agent["agent_id"])
    for task in (
        event_task("orders.*"),
        event_task("orders.created"),
        event_task("orders.*", filter="${event.payload.amount > params.min}"),
        event_task("payments.*"),
    ):
        assert (await client.post("/tasks", json=task, headers=h)).status_code == 201

    body = {"topic": "orders.created", "payload": {"amount": 5}, "event_id": "e1"}
    r = await client.post("/events", json=body, headers=h)
    assert r.status_code == 202, r.text
    assert r.json() == {
        "event_id": "e1",
        "topic": "orders.created",
        "duplicate": False,
        "runs_queued": 2,
        "runs_refused": 0,
        "tasks_matched": 2,  # the filter kept the third task out
    }
    assert await _writes(pool, tenant) == {
        "events": [{"event_id": "e1", "tasks_matched": 2}],
        "outbox": ["run.queued", "run.queued", "event.received"],
        "runs": 2,
        "due": 2,
        "quota": 2,
    }

    again = await client.post("/events", json={**body, "payload": {"amount": 500}}, headers=h)
    assert again.json() == {
        "event_id": "e1",
        "topic": "orders.created",
        "duplicate": True,
        "runs_queued": 0,
        "runs_refused": 0,
        "tasks_matched": 2,
    }
    before = await _writes(pool, tenant)
    assert before["runs"] == 2
    assert before["outbox"][-1] == "event.received"

    # three tasks match now, one run is left in this minute's budget of three
    r = await client.post(
        "/events",
        json={"topic": "orders.created", "payload": {"amount": 500}, "event_id": "e2"},
        headers=h,
    )
    assert r.json()["runs_queued"] == 1
    assert r.json()["runs_refused"] == 2
    assert r.json()["tasks_matched"] == 3
    after = await _writes(pool, tenant)
    assert after["outbox"] == [
        *before["outbox"],
        "run.queued",
        "event.received",
        "runs.throttled",
    ]
    assert (after["runs"], after["due"], after["quota"]) == (3, 3, 3)

    # nothing matches: the event and its event.received only
    r = await client.post("/events", json={"topic": "other.thing", "event_id": "e3"}, headers=h)
    assert r.json()["tasks_matched"] == 0
    assert r.json()["runs_queued"] == 0
    last = await _writes(pool, tenant)
    assert last["events"][-1] == {"event_id": "e3", "tasks_matched": 0}
    assert last["outbox"] == [*after["outbox"], "event.received"]
    assert (last["runs"], last["quota"]) == (3, 3)
