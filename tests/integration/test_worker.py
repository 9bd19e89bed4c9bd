"""Workers: SKIP LOCKED leasing, fencing, rescue, retries, dead letters, overlap, release."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from samples import FAILING_PAYLOAD as FAILING
from support import queue_runs

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick
from ordinaut.store import work
from ordinaut.worker import Worker


async def _run_now(
    pool: asyncpg.Pool, task: dict, clock: FrozenClock, n: int = 1, trigger: str = "run_now"
) -> list[uuid.UUID]:
    return await queue_runs(pool, task, at=clock.now(), n=n, trigger=trigger)


def _worker(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock, name: str) -> Worker:
    return Worker(pool, settings, clock, worker_id=name, rng=random.Random(1))


async def test_run_once_records_success_with_step_results(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task(schedule_expr="* * * * *")
    await tick(pool, settings.replace(lookahead_s=30), clock)
    worker = _worker(pool, settings, clock, "w1")
    assert await worker.run_once() == 1
    run = await pool.fetchrow("SELECT * FROM runs WHERE task_id = $1", task["id"])
    assert run["status"] == "succeeded"
    assert run["output"] == {"msg": "hello world"}
    assert run["step_results"][0]["status"] == "succeeded"
    assert run["finished_at"] == clock.now()
    assert await pool.fetchval("SELECT count(*) FROM due_work") == 0
    types = [
        r["event_type"] for r in await pool.fetch("SELECT event_type FROM outbox ORDER BY seq")
    ]
    assert types == ["run.queued", "run.started", "run.succeeded"]


async def test_failures_retry_with_backoff_then_dead_letter(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task(payload=FAILING, max_retries=2, backoff_strategy="fixed")
    (run_id,) = await _run_now(pool, task, clock)
    worker = _worker(pool, settings.replace(backoff_base_s=30), clock, "w1")
    assert await worker.run_once() == 1
    row = await pool.fetchrow(
        "SELECT attempt, run_at, state FROM due_work WHERE run_id = $1", run_id
    )
    assert (row["attempt"], row["state"]) == (2, "queued")
    assert row["run_at"] == clock.now() + timedelta(seconds=30)  # never slept under a lease
    assert await worker.run_once() == 0  # not due yet
    clock.advance(30)
    assert await worker.run_once() == 1
    clock.advance(30)
    assert await worker.run_once() == 1
    run = await pool.fetchrow("SELECT status, attempt, error FROM runs WHERE id = $1", run_id)
    assert (run["status"], run["attempt"]) == ("dead_letter", 3)
    assert "nope" in str(run["error"])


async def test_concurrent_workers_never_lease_a_row_twice(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task()
    ids = await _run_now(pool, task, clock, n=300)
    workers = [_worker(pool, settings.replace(lease_batch=7), clock, f"w{i}") for i in range(5)]
    leased: list[int] = []

    async def drain(w: Worker) -> None:
        while n := await w.run_once():
            leased.append(n)

    await asyncio.gather(*(drain(w) for w in workers))
    assert sum(leased) == len(ids)
    counts = await pool.fetch("SELECT status, count(*) FROM runs GROUP BY status")
    assert {r["status"]: r["count"] for r in counts} == {"succeeded": 300}
    started = await pool.fetchval("SELECT count(*) FROM outbox WHERE event_type = 'run.started'")
    assert started == 300


async def test_stale_worker_is_fenced_and_lease_is_rescued(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task(max_retries=3)
    (run_id,) = await _run_now(pool, task, clock)
    s = settings.replace(lease_seconds=30)
    stale = _worker(pool, s, clock, "stale")
    (row,) = await stale.lease(1)
    clock.advance(31)  # stale stopped heartbeating; its lease expired
    fresh = _worker(pool, s, clock, "fresh")
    assert await fresh.rescue() == 1
    assert await fresh.run_once() == 1
    late = work.Outcome(run_id, row.lease_token, row.attempt, "succeeded", clock.now())
    assert await stale.record(late, []) is False  # fenced: the old token cannot complete
    kept = await work.extend_leases(pool, [(run_id, row.lease_token)], now=clock.now(), lease_s=30)
    assert kept == set()
    run = await pool.fetchrow("SELECT status, attempt, worker_id FROM runs WHERE id = $1", run_id)
    assert (run["status"], run["attempt"], run["worker_id"]) == ("succeeded", 2, "fresh")


async def test_expired_last_attempt_is_dead_lettered(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task(max_retries=0)
    (run_id,) = await _run_now(pool, task, clock)
    w = _worker(pool, settings.replace(lease_seconds=5), clock, "w")
    await w.lease(1)
    clock.advance(6)
    assert await w.rescue() == 1
    assert (
        await pool.fetchval("SELECT status::text FROM runs WHERE id = $1", run_id) == "dead_letter"
    )


async def test_overlap_skip_and_shutdown_release(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task(
        overlap_policy="skip",
        payload={"params": {}, "pipeline": [{"id": "w", "uses": "wait", "with": {"seconds": 5}}]},
    )
    first, second = await _run_now(pool, task, clock, n=2, trigger="schedule")
    w1 = _worker(pool, settings, clock, "w1")
    rows = await w1.lease(1)
    w1.start(list(rows))
    await asyncio.sleep(0.05)
    w2 = _worker(pool, settings, clock, "w2")
    assert await w2.run_once() == 1  # the second slot sees the first still running
    statuses = dict(await pool.fetch("SELECT id, status::text FROM runs"))
    assert statuses[rows[0].run_id] == "running"
    other = second if rows[0].run_id == first else first
    assert statuses[other] == "skipped"
    await w1.shutdown(grace_s=0.0)  # releases the in-flight run, same attempt, due now
    row = await pool.fetchrow(
        "SELECT state, attempt FROM due_work WHERE run_id = $1", rows[0].run_id
    )
    assert (row["state"], row["attempt"]) == ("queued", 1)


async def test_buffer_one_keeps_one_waiting_slot(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task(
        overlap_policy="buffer_one",
        payload={"params": {}, "pipeline": [{"id": "w", "uses": "wait", "with": {"seconds": 5}}]},
    )
    (first,) = await _run_now(pool, task, clock)
    w1 = _worker(pool, settings, clock, "w1")
    running = await w1.lease(10)
    assert [r.run_id for r in running] == [first]
    w1.start(list(running))
    await asyncio.sleep(0.05)
    waiting = await _run_now(pool, task, clock, n=3)
    w2 = _worker(pool, settings, clock, "w2")
    assert await w2.lease(10) == []  # all three wait while the first runs
    await w1.shutdown(grace_s=0.0)
    await pool.execute("DELETE FROM due_work WHERE run_id = $1", first)  # first is done
    rows = await w2.lease(10)
    assert {r.run_id for r in rows} == set(waiting)
    payload = {"params": {}, "pipeline": [{"id": "e", "uses": "echo", "with": {}}]}
    await pool.execute("UPDATE tasks SET payload = $2 WHERE id = $1", task["id"], payload)
    await asyncio.gather(*w2.start(list(rows)))
    statuses = sorted(
        r["status"]
        for r in await pool.fetch("SELECT status::text FROM runs WHERE id = ANY($1)", waiting)
    )
    assert statuses == ["skipped", "skipped", "succeeded"]


def _echo(msg: str) -> dict[str, Any]:
    return {"params": {}, "pipeline": [{"id": "say", "uses": "echo", "with": {"msg": msg}}]}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many tasks each payload read of the workers asked for."""
    seen: list[int] = []
    real = work.task_payloads

    async def counting(conn: Any, task_ids: Any) -> Any:
        seen.append(len(task_ids))
        return await real(conn, task_ids)

    monkeypatch.setattr(work, "task_payloads", counting)
    return seen


async def test_payloads_are_read_once_per_task_version_and_an_edit_is_picked_up(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any, reads: list[int]
) -> None:
    task = await make_task(payload=_echo("v1"))
    worker = _worker(pool, settings, clock, "w1")
    await _run_now(pool, task, clock, n=3)
    assert await worker.run_once() == 3
    await _run_now(pool, task, clock, n=2)
    assert await worker.run_once() == 2
    assert reads == [1]  # one read for the first batch, none for the second
    clock.advance(1)
    await pool.execute(
        "UPDATE tasks SET payload = $2, payload_version = payload_version + 1 WHERE id = $1",
        task["id"],
        _echo("v2"),
    )
    await _run_now(pool, task, clock)
    assert await worker.run_once() == 1
    assert reads == [1, 1]
    outputs = [
        r["output"]["msg"]
        for r in await pool.fetch(
            "SELECT output FROM runs WHERE task_id = $1 ORDER BY created_at, finished_at",
            task["id"],
        )
    ]
    assert sorted(outputs) == ["v1"] * 5 + ["v2"]


async def test_scheduled_slots_of_a_task_reuse_its_compiled_pipeline_across_ticks(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any, reads: list[int]
) -> None:
    task = await make_task(schedule_expr="* * * * *")
    worker = _worker(pool, settings, clock, "w1")
    for _ in range(3):  # each tick advances the task (next_run_at, updated_at)
        await tick(pool, settings.replace(lookahead_s=30), clock)
        clock.advance(60)
        assert await worker.run_once() == 1
    assert reads == [1]
    statuses = await pool.fetch("SELECT status FROM runs WHERE task_id = $1", task["id"])
    assert [r["status"] for r in statuses] == ["succeeded"] * 3


async def test_an_edit_between_lease_and_read_runs_the_version_read(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task(payload=_echo("old"))
    (run_id,) = await _run_now(pool, task, clock)
    worker = _worker(pool, settings, clock, "w1")
    async with pool.acquire() as conn:
        (row,) = await work.lease(conn, now=clock.now(), limit=1, lease_s=60, worker_id="w1")
    await pool.execute(
        "UPDATE tasks SET payload = $2, payload_version = payload_version + 1 WHERE id = $1",
        task["id"],
        _echo("new"),
    )
    worker.start([row])
    for t in [t for _, t in worker.in_flight.values()]:
        await t
    run = await pool.fetchrow("SELECT status, output FROM runs WHERE id = $1", run_id)
    assert (run["status"], run["output"]) == ("succeeded", {"msg": "new"})


async def test_a_task_deleted_after_the_lease_leaves_no_run_behind(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings, make_task: Any
) -> None:
    task = await make_task()
    await _run_now(pool, task, clock)
    worker = _worker(pool, settings, clock, "w1")
    async with pool.acquire() as conn:
        (row,) = await work.lease(conn, now=clock.now(), limit=1, lease_s=60, worker_id="w1")
    await pool.execute("DELETE FROM tasks WHERE id = $1", task["id"])
    outcome, events = await worker._execute(row)
    assert outcome.error["code"] == "task_gone"
    assert await worker.record(outcome, events) is False  # fenced: the slot went with the task
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", task["id"]) == 0


async def test_leased_rows_start_even_when_their_pipelines_cannot_be_read(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    make_task: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = await make_task(max_retries=1)
    (run_id,) = await _run_now(pool, task, clock)
    worker = _worker(pool, settings, clock, "w1")

    async def broken(conn: Any, task_ids: Any) -> Any:
        raise asyncpg.InterfaceError("pool is closing")

    monkeypatch.setattr(work, "task_payloads", broken)
    assert await worker.run_once() == 1  # not an exception that strands the leased row
    assert worker.in_flight == {}
    run = await pool.fetchrow("SELECT status, error FROM runs WHERE id = $1", run_id)
    assert (run["status"], run["error"]["code"]) == ("queued", "unavailable")  # retried
    monkeypatch.undo()
    clock.advance(60)
    assert await worker.run_once() == 1
    assert await pool.fetchval("SELECT status::text FROM runs WHERE id = $1", run_id) == "succeeded"
