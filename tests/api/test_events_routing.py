"""Events across tenants (admin-declared shared topics), filters, and their isolation."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import httpx

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]


def event_task(pattern: str, **payload: Any) -> dict[str, Any]:
    return {
        "title": f"on {pattern}",
        "schedule_kind": "event",
        "schedule_expr": pattern,
        "payload": {
            "params": {"min": 100},
            "pipeline": [
                {
                    "id": "got",
                    "uses": "echo",
                    "with": {"id": "${event.id}", "p": "${event.payload}"},
                }
            ],
            **payload,
        },
    }


async def _runs(client: httpx.AsyncClient, agent: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get("/runs", headers=agent["headers"])).json()[
        "items"
    ]
    return items


async def test_shared_topics_reach_other_tenants_only_when_declared_and_subscribed(
    client: httpx.AsyncClient,
    make_agent: Any,
    admin: dict[str, Any],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    alice = await make_agent(SCOPES, name="alice")
    bob = await make_agent(SCOPES, name="bob")
    carol = await make_agent(SCOPES, name="carol")
    shared = (
        await client.post("/tasks", json=event_task("shared:prices.*"), headers=bob["headers"])
    ).json()
    await client.post("/tasks", json=event_task("prices.*"), headers=bob["headers"])
    own = (
        await client.post("/tasks", json=event_task("prices.*"), headers=alice["headers"])
    ).json()

    async def publish(event_id: str) -> dict[str, Any]:
        body = {"topic": "prices.eur", "payload": {"v": 1}, "event_id": event_id}
        r = await client.post("/events", json=body, headers=alice["headers"])
        assert r.status_code == 202, r.text
        doc: dict[str, Any] = r.json()
        return doc

    await publish("before")  # not shared yet: only alice's own task
    assert len(await _runs(client, alice)) == 1
    assert await _runs(client, bob) == []

    denied = await client.post(
        "/events/shared-topics", json={"pattern": "prices.*"}, headers=alice["headers"]
    )
    assert denied.status_code == 403
    r = await client.post(
        "/events/shared-topics", json={"pattern": "prices.*"}, headers=admin["headers"]
    )
    assert r.status_code == 201
    assert r.json()["pattern"] == "prices.*"
    again = await client.post(
        "/events/shared-topics", json={"pattern": "prices.*"}, headers=admin["headers"]
    )
    assert again.status_code == 200
    listed = (await client.get("/events/shared-topics", headers=bob["headers"])).json()
    assert [t["pattern"] for t in listed["items"]] == ["prices.*"]
    assert listed["total"] == 1
    bad = await client.post(
        "/events/shared-topics", json={"pattern": "shared:x"}, headers=admin["headers"]
    )
    assert bad.status_code == 422

    first = await publish("e1")
    # the publisher's answer counts its own tasks only
    assert (first["runs_queued"], first["tasks_matched"]) == (1, 1)
    assert (await publish("e1"))["duplicate"] is True  # replayed: nobody runs twice
    bob_runs = await _runs(client, bob)
    assert [(r["task_id"], r["event_id"]) for r in bob_runs] == [
        (shared["id"], f"{alice['agent_id']}#e1")
    ]
    assert await _runs(client, carol) == []

    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    assert await worker.run_once() == 3  # alice's two, bob's one
    run = (await client.get(f"/runs/{bob_runs[0]['id']}", headers=bob["headers"])).json()
    assert run["status"] == "succeeded"
    assert run["output"] == {"id": f"{alice['agent_id']}#e1", "p": {"v": 1}}
    # bob cannot read alice's run, and sees the event as a shared copy in his own tenant
    alice_run = (await _runs(client, alice))[0]["id"]
    assert (await client.get(f"/runs/{alice_run}", headers=bob["headers"])).status_code == 404
    recent = (await client.get("/events/stream/recent", headers=bob["headers"])).json()["items"]
    assert [(e["event_id"], e["source"]) for e in recent] == [(f"{alice['agent_id']}#e1", "shared")]
    assert [
        e["event_id"]
        for e in (await client.get("/events/stream/recent", headers=alice["headers"])).json()[
            "items"
        ]
    ] == ["e1", "before"]
    topics = (await client.get("/events/topics", headers=alice["headers"])).json()["items"]
    assert topics == [{"topic": "prices.*", "tasks": 1}]
    assert own["schedule_expr"] == "prices.*"

    # an event bob publishes on the shared topic reaches his shared and plain tasks
    r = await client.post(
        "/events", json={"topic": "prices.usd", "event_id": "b1"}, headers=bob["headers"]
    )
    assert r.json()["runs_queued"] == 2
    assert len(await _runs(client, alice)) == 2  # alice is not subscribed with shared:

    assert (
        await client.delete("/events/shared-topics/prices.*", headers=admin["headers"])
    ).status_code == 204
    assert (
        await client.delete("/events/shared-topics/prices.*", headers=admin["headers"])
    ).status_code == 404
    await publish("after")
    assert len(await _runs(client, bob)) == 3  # unchanged: sharing ended


async def test_event_filters_decide_which_tasks_an_event_triggers(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(SCOPES)
    h = agent["headers"]
    big = event_task("orders.*", filter="${event.payload.amount > params.min}")
    r = await client.post("/tasks", json=big, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["payload"]["filter"] == "${event.payload.amount > params.min}"
    await client.post("/tasks", json=event_task("orders.*"), headers=h)

    async def queued(payload: dict[str, Any]) -> int:
        r = await client.post(
            "/events", json={"topic": "orders.new", "payload": payload}, headers=h
        )
        count: int = r.json()["runs_queued"]
        return count

    assert await queued({"amount": 50}) == 1
    assert await queued({"amount": 150}) == 2
    assert await queued({"other": 1}) == 1  # the filter cannot evaluate: no match

    for body, field in [
        (event_task("a.b", filter="${steps.x.output}"), "payload.filter"),
        (event_task("a.b", filter="not ${one} expression"), "payload.filter"),
        (event_task("a.b", check=[{"id": "x", "uses": "echo"}]), "payload.check"),
        (event_task("shared:"), "schedule_expr"),
    ]:
        r = await client.post("/tasks", json=body, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == field
    r = await client.post("/events", json={"topic": "shared:prices"}, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "topic"
    r = await client.post("/events", json={"topic": "a", "payload": {"x": "\u0000"}}, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.payload.x"


async def test_condition_tasks_are_validated_like_pipelines(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(SCOPES)
    h = agent["headers"]
    body = {
        "title": "cheap",
        "schedule_kind": "condition",
        "schedule_expr": "*/5 * * * *",
        "payload": {
            "params": {"limit": 100},
            "check": [{"id": "price", "uses": "echo", "with": {"value": 90}}],
            "condition": "${steps.price.output.value < params.limit}",
            "cooldown_seconds": 600,
            "pipeline": [{"id": "notify", "uses": "log", "with": {"message": "cheap"}}],
        },
    }
    r = await client.post("/tasks", json=body, headers=h)
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["next_run_at"] is not None
    assert task["payload"]["check"][0]["id"] == "price"
    assert task["payload"]["condition"] == "${steps.price.output.value < params.limit}"
    assert task["payload"]["cooldown_seconds"] == 600

    checked = await client.post("/tasks/validate", json={"task": body, "dry_run": True}, headers=h)
    assert checked.status_code == 200, checked.text
    assert [s["id"] for s in checked.json()["steps"]] == ["notify"]

    def variant(**changes: Any) -> dict[str, Any]:
        payload = {k: v for k, v in {**body["payload"], **changes}.items() if v is not None}
        return {**body, "payload": payload}

    for bad, field in [
        (variant(condition=None), "payload.condition"),
        (variant(check=None), "payload.check"),
        (variant(condition="${steps.nope.output}"), "payload.condition"),
        (variant(check=[{"id": "price", "uses": "no.such.tool"}]), "payload.check[0].uses"),
        (variant(filter="${event.payload}"), "payload.filter"),
        ({**body, "schedule_expr": "not cron"}, "schedule_expr"),
    ]:
        r = await client.post("/tasks", json=bad, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == field, r.json()
    cron = {**body, "schedule_kind": "cron"}
    r = await client.post("/tasks", json=cron, headers=h)
    assert r.status_code == 422
    assert {d["field"] for d in r.json()["error"]["details"]} == {
        "payload.check",
        "payload.condition",
        "payload.cooldown_seconds",
    }
    publisher = variant(
        check=[{"id": "tell", "uses": "event.publish", "with": {"topic": "x"}}],
        condition="${steps.tell.output.published}",
    )
    reader = await make_agent(["tasks:write"])
    r = await client.post("/tasks", json=publisher, headers=reader["headers"])
    assert r.status_code == 403  # the check's tools need scopes too
