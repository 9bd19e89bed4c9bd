"""An agent's expressions cannot stall the API process (issue 17, finding 2).

Dry runs (``POST /tasks/validate``) and event filters (``POST /events``) evaluate an agent's
expressions; they run off the event loop, so ``/health/live`` and everyone else's requests
are answered while one evaluates. The proof holds the evaluation inside ``round()`` until the
health check has been answered: on an event loop evaluating inline, that answer could never
come first.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from ordinaut.pipeline.interpreter import Interpreter

MULTIPLY_CHAIN = "${params.n" + " | multiply(@, @)" * 21 + "}"
SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]


class Hold:
    """Holds the first ``round()`` evaluation until ``/health/live`` has been answered."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.seen: list[bool] = []
        visit = Interpreter.visit_function_expression

        def held(interp: Interpreter, node: Any, value: Any) -> Any:
            if node["value"] == "round" and not self.seen:
                self.entered.set()
                # True only if /health/live was answered while this evaluation was running
                self.seen.append(self.gate.wait(timeout=10))
            return visit(interp, node, value)

        mp.setattr(Interpreter, "visit_function_expression", held)

    async def health(self, client: httpx.AsyncClient) -> int:
        for _ in range(2_000):  # until the evaluation is under way (an inline one blocks this)
            if self.entered.is_set():
                break
            await asyncio.sleep(0.005)
        r = await client.get("/health/live")
        self.gate.set()
        return r.status_code


async def test_health_is_served_while_a_dry_run_evaluates(
    client: httpx.AsyncClient, make_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = await make_agent(["tasks:read"])
    hold = Hold(monkeypatch)
    payload = {
        "pipeline": [{"id": "r", "uses": "echo", "with": {"x": "${round(`5`, `-10000000`)}"}}]
    }
    validate = client.post(
        "/tasks/validate",
        json={"payload": payload, "dry_run": True},
        headers=agent["headers"],
    )
    r, health = await asyncio.gather(validate, hold.health(client))
    assert health == 200
    assert hold.seen == [True]
    assert r.status_code == 200, r.text
    assert r.json()["steps"][0]["input"] == {"x": 0}  # digits clamped, no 10**10000000 built


async def test_heavy_expressions_answer_an_error_naming_the_limit(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(["tasks:read"])
    payload = {
        "params": {"n": 2},
        "pipeline": [{"id": "m", "uses": "echo", "with": {"x": MULTIPLY_CHAIN}}],
    }
    r = await client.post(
        "/tasks/validate", json={"payload": payload, "dry_run": True}, headers=agent["headers"]
    )
    assert r.status_code == 200, r.text
    (error,) = r.json()["steps"][0]["errors"]
    assert error["field"] == "with.x"
    assert "multiply(): number out of range" in error["message"]
    assert "2**63" in error["message"]


async def test_health_is_served_while_an_event_filter_evaluates(
    client: httpx.AsyncClient, make_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = await make_agent(SCOPES)
    task = {
        "title": "filtered",
        "schedule_kind": "event",
        "schedule_expr": "orders.*",
        "payload": {
            "filter": "${round(event.payload.amount, `-10000000`) == `0`}",
            "pipeline": [{"id": "e", "uses": "echo"}],
        },
    }
    created = await client.post("/tasks", json=task, headers=agent["headers"])
    assert created.status_code == 201, created.text
    hold = Hold(monkeypatch)
    publish = client.post(
        "/events",
        json={"topic": "orders.new", "payload": {"amount": 5}},
        headers=agent["headers"],
    )
    r, health = await asyncio.gather(publish, hold.health(client))
    assert health == 200
    assert hold.seen == [True]
    assert r.status_code in (200, 201, 202), r.text
    assert r.json()["runs_queued"] == 1
