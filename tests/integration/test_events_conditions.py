"""Condition tasks: polled checks, edge-triggered pipelines, cooldown, state across restarts."""

from __future__ import annotations

import random
import uuid
from typing import Any

import asyncpg

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick
from ordinaut.worker import Worker

PRICE_WATCH: dict[str, Any] = {
    "params": {"price": 150},
    "check": [{"id": "price", "uses": "echo", "with": {"value": "${params.price}"}}],
    "condition": "${steps.price.output.value < `100`}",
    "pipeline": [
        {
            "id": "notify",
            "uses": "echo",
            "with": {"text": "price is ${event.payload.steps.price.output.value}"},
        }
    ],
}


class Poller:
    """One poll per minute: set the price the check will see, tick, run what is due."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock, task_id: uuid.UUID
    ) -> None:
        self.pool = pool
        self.settings = settings.replace(lookahead_s=30)
        self.clock = clock
        self.task_id = task_id
        self.worker = self.restart()
        self.first = True

    def restart(self) -> Worker:
        self.worker = Worker(
            self.pool, self.settings, self.clock, worker_id=uuid.uuid4().hex, rng=random.Random(0)
        )
        return self.worker

    async def poll(self, price: int) -> asyncpg.Record:
        await self.pool.execute(
            "UPDATE tasks SET payload = jsonb_set(payload, '{params,price}', $2::jsonb),"
            " payload_version = payload_version + 1, updated_at = clock_timestamp()"
            " WHERE id = $1",
            self.task_id,
            price,  # the jsonb codec encodes it
        )
        if not self.first:
            self.clock.advance(60)
        self.first = False
        await tick(self.pool, self.settings, self.clock)
        assert await self.worker.run_once() == 1
        return await self.pool.fetchrow(
            "SELECT * FROM runs WHERE task_id = $1 ORDER BY scheduled_for DESC LIMIT 1",
            self.task_id,
        )


async def test_the_pipeline_runs_only_on_the_false_to_true_edge_across_a_restart(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock, make_task: Any
) -> None:
    task = await make_task(
        schedule_kind="condition", schedule_expr="* * * * *", payload=PRICE_WATCH
    )
    assert task["next_run_at"] == clock.now()
    poller = Poller(pool, settings, clock, task["id"])

    run = await poller.poll(150)
    assert (run["trigger"], run["status"]) == ("condition", "skipped"), run["error"]
    assert run["output"] == {
        "condition": False,
        "previous": None,
        "fired": False,
        "reason": "condition is false",
    }
    assert [s["id"] for s in run["step_results"]] == ["price", "condition"]
    assert run["step_results"][0]["output"] == {"value": 150}

    run = await poller.poll(90)
    assert (run["status"], run["output"]) == ("succeeded", {"text": "price is 90"})
    assert [s["id"] for s in run["step_results"]] == ["price", "condition", "notify"]
    assert run["step_results"][1]["output"]["fired"] is True

    poller.restart()  # a new worker process: the last value comes from the database
    run = await poller.poll(80)
    assert (run["status"], run["output"]["reason"]) == ("skipped", "condition was already true")
    run = await poller.poll(120)
    assert (run["status"], run["output"]["previous"]) == ("skipped", True)
    poller.restart()
    run = await poller.poll(95)
    assert (run["status"], run["output"]) == ("succeeded", {"text": "price is 95"})

    runs = await pool.fetch(
        "SELECT status FROM runs WHERE task_id = $1 ORDER BY scheduled_for", task["id"]
    )
    assert [r["status"] for r in runs] == [
        "skipped",
        "succeeded",
        "skipped",
        "skipped",
        "succeeded",
    ]
    state = await pool.fetchrow("SELECT * FROM condition_state WHERE task_id = $1", task["id"])
    assert state["value"] is True
    assert state["fired_at"] == clock.now()


async def test_the_cooldown_swallows_edges_too_soon_after_a_fire(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock, make_task: Any
) -> None:
    task = await make_task(
        schedule_kind="condition",
        schedule_expr="* * * * *",
        payload={**PRICE_WATCH, "cooldown_seconds": 300},
    )
    poller = Poller(pool, settings, clock, task["id"])
    statuses = []
    for price in (90, 150, 80, 150, 70, 150, 60):  # one poll a minute
        run = await poller.poll(price)
        statuses.append((run["status"], run["output"].get("reason")))
    assert statuses == [
        ("succeeded", None),
        ("skipped", "condition is false"),
        ("skipped", "cooldown: 180 s left"),
        ("skipped", "condition is false"),
        ("skipped", "cooldown: 60 s left"),
        ("skipped", "condition is false"),
        ("succeeded", None),  # 360 s after the first fire
    ]


async def test_a_failing_check_fails_the_poll_and_leaves_the_state_alone(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock, make_task: Any
) -> None:
    payload = {
        **PRICE_WATCH,
        "condition": "${steps.price.output.missing < `100`}",
    }
    task = await make_task(
        schedule_kind="condition", schedule_expr="* * * * *", payload=payload, max_retries=0
    )
    run = await Poller(pool, settings, clock, task["id"]).poll(90)
    assert run["status"] == "dead_letter"
    assert run["error"]["step"] == "condition"
    assert run["error"]["phase"] == "check"
    assert "missing path" in run["error"]["message"]
    assert await pool.fetchval("SELECT count(*) FROM condition_state") == 0
