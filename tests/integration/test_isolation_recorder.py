"""One run's outcome that cannot be stored fails that run alone (issue 17, finding 1).

Tenant A's runs produce what PostgreSQL or the JSON encoder refuses (an event payload nested
300 deep, a step output holding a NUL character); tenant B's runs finish in the same recorder
batch and must each be recorded once, succeeded, with nothing re-run.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import asyncpg
import pytest
from support import queue_runs

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.pipeline import default_registry
from ordinaut.store import tasks, work
from ordinaut.taskdefs import prepare
from ordinaut.worker import Recorder, Worker

INSERT_AGENT = """
INSERT INTO agents (id, name, scopes, secret_hash, created_at, updated_at)
VALUES ($1, $2, ARRAY['tasks:read','tasks:write','runs:read','events:publish'], 'x', $3, $3)
"""
DEEP = "[" * 300 + "]" * 300


async def _agent(pool: asyncpg.Pool, clock: FrozenClock, name: str) -> uuid.UUID:
    agent_id = uuid.uuid4()
    await pool.execute(INSERT_AGENT, agent_id, name, clock.now())
    return agent_id


async def _task(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    owner: uuid.UUID,
    pipeline: list[dict[str, Any]],
    max_retries: int = 2,
) -> dict[str, Any]:
    fields = {
        "title": "t",
        "description": "",
        "schedule_kind": "cron",
        "schedule_expr": "*/5 * * * *",
        "timezone": "UTC",
        "payload": {"pipeline": pipeline},
        "priority": 5,
        "max_retries": max_retries,
        "backoff_strategy": "fixed",
        "dedupe_key": None,
        "dedupe_window_seconds": None,
        "concurrency_key": None,
        "misfire_policy": "run_once",
        "overlap_policy": "allow",
    }
    prepared = prepare(
        fields, now=clock.now(), settings=settings, registry=default_registry(settings)
    )
    prepared.update(status="active", snoozed_until=None)
    async with pool.acquire() as conn:
        return await tasks.insert_task(
            conn, task_id=uuid.uuid4(), owner_id=owner, task=prepared, now=clock.now()
        )


async def test_a_tenants_unstorable_outcomes_fail_only_its_own_runs(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_a = await _agent(pool, clock, "a")
    tenant_b = await _agent(pool, clock, "b")
    deep = await _task(
        pool,
        clock,
        settings,
        tenant_a,
        [
            {
                "id": "pub",
                "uses": "event.publish",
                "with": {"topic": "boom", "payload": {"x": f"${{from_json('{DEEP}')}}"}},
            }
        ],
        max_retries=0,
    )
    nul = await _task(
        pool,
        clock,
        settings,
        tenant_a,
        [{"id": "t", "uses": "transform", "with": {"value": "${from_json('\"a\\u0000b\"')}"}}],
        max_retries=0,
    )
    fine = await _task(
        pool,
        clock,
        settings,
        tenant_b,
        [
            {"id": "e", "uses": "echo", "with": {"n": 1}},
            {"id": "p", "uses": "event.publish", "with": {"topic": "b.done", "payload": {}}},
        ],
    )
    (deep_run,) = await queue_runs(pool, deep, at=clock.now())
    (nul_run,) = await queue_runs(pool, nul, at=clock.now())
    b_runs = await queue_runs(pool, fine, at=clock.now(), n=8)

    batches: list[set[uuid.UUID]] = []
    write = Recorder._write

    async def spy(self: Recorder, batch: list[Any]) -> set[uuid.UUID]:
        batches.append({item[0].run_id for item in batch})
        return await write(self, batch)

    monkeypatch.setattr(Recorder, "_write", spy)
    worker = Worker(pool, settings, clock, worker_id="w1", rng=random.Random(1))
    assert await worker.run_once() == 10
    # the runs really shared a batch: a tenant's bad outcome was written with the others'
    assert any(nul_run in b and set(b_runs) <= b for b in batches)

    rows = {
        r["id"]: r
        for r in await pool.fetch("SELECT id, status::text, attempt, error, output FROM runs")
    }
    for run_id in b_runs:
        assert (rows[run_id]["status"], rows[run_id]["attempt"]) == ("succeeded", 1)
    # B's events were published once per run
    published = await pool.fetchval("SELECT count(*) FROM events WHERE topic = 'b.done'")
    assert published == 8
    # A's deep payload is refused where it is produced: the step fails naming the limit
    assert rows[deep_run]["status"] == "dead_letter"
    assert "max_json_depth" in rows[deep_run]["error"]["message"]
    assert await pool.fetchval("SELECT count(*) FROM events WHERE topic = 'boom'") == 0
    # A's NUL value cannot be stored: it is refused where it is produced (the step's
    # arguments), naming it; that run alone ends as a dead letter, not re-run
    assert rows[nul_run]["status"] == "dead_letter"
    assert rows[nul_run]["error"]["code"] == "unstorable_value"
    assert rows[nul_run]["error"]["message"].startswith(
        "with.value: text may not contain NUL (\\u0000)"
    )
    assert await pool.fetchval("SELECT count(*) FROM due_work WHERE run_id = $1", nul_run) == 0
    # nothing is left to a lease expiry and a rescue
    assert await worker.rescue() == 0
    assert await pool.fetchval("SELECT count(*) FROM due_work WHERE state = 'running'") == 0


async def test_an_outcome_the_encoder_refuses_is_dead_lettered_alone(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    owner = await _agent(pool, clock, "a")
    task = await _task(pool, clock, settings, owner, [{"id": "e", "uses": "echo"}])
    runs = await queue_runs(pool, task, at=clock.now(), n=3)
    async with pool.acquire() as conn:
        leased = await work.lease(conn, now=clock.now(), limit=3, lease_s=30, worker_id="w1")
    by_id = {r.run_id: r for r in leased}
    deep: Any = []
    for _ in range(300):
        deep = [deep]
    outcomes = [
        work.Outcome(
            run_id,
            by_id[run_id].lease_token,
            1,
            "succeeded",
            clock.now(),
            output=deep if i == 0 else {"ok": i},
        )
        for i, run_id in enumerate(runs)
    ]
    recorder = Recorder(pool)
    done = await asyncio.gather(*(recorder.record(o, []) for o in outcomes))
    assert done == [True, True, True]
    rows = {r["id"]: r for r in await pool.fetch("SELECT id, status::text, error FROM runs")}
    assert rows[runs[0]]["status"] == "dead_letter"
    assert rows[runs[0]]["error"]["code"] == "storage_error"
    assert [rows[r]["status"] for r in runs[1:]] == ["succeeded", "succeeded"]


async def test_a_connection_lost_while_recording_is_retried_not_left_to_a_rescue(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await _agent(pool, clock, "a")
    task = await _task(pool, clock, settings, owner, [{"id": "e", "uses": "echo"}])
    runs = await queue_runs(pool, task, at=clock.now(), n=3)
    finish = work.finish
    failures = [asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")] * 2

    async def flaky(conn: asyncpg.Connection, outcomes: Any) -> Any:
        if failures:
            raise failures.pop()
        return await finish(conn, outcomes)

    monkeypatch.setattr(work, "finish", flaky)
    worker = Worker(pool, settings, clock, worker_id="w1", rng=random.Random(1))
    assert await worker.run_once() == 3
    assert failures == []
    rows = await pool.fetch("SELECT status::text, attempt FROM runs WHERE id = ANY($1)", runs)
    assert sorted((r["status"], r["attempt"]) for r in rows) == [("succeeded", 1)] * 3
    assert await pool.fetchval("SELECT count(*) FROM due_work") == 0
    assert await worker.rescue() == 0
