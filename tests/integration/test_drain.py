"""``Worker.drain`` (the Lambda worker) never repeats work: run bounds, the budget filter,
deadline cuts that count the attempt, and waiting for work due within the budget."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from support import queue_runs

from ordinaut.clock import DatabaseClock, FrozenClock
from ordinaut.config import Settings
from ordinaut.errors import ValidationFailed
from ordinaut.pipeline import default_registry
from ordinaut.taskdefs import RUN_OVERHEAD_S, prepare
from ordinaut.worker import Worker
from ordinaut.worker.attempt import Attempts

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ECHO = {"pipeline": [{"id": "hello", "uses": "echo", "with": {"msg": "hi"}}]}


def nap(seconds: float, timeout_s: float = 30) -> dict[str, Any]:
    step = {"id": "nap", "uses": "wait", "with": {"seconds": seconds}}
    return {"pipeline": [{**step, "timeout_seconds": timeout_s}]}


def running_clock() -> DatabaseClock:
    """A clock that starts at START and moves with real time (drain waits on it)."""
    clock = DatabaseClock()
    now = time.monotonic()
    clock.sync(START, now, now)
    return clock


async def run_row(pool: asyncpg.Pool, run_id: uuid.UUID) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT r.status::text AS status, r.attempt, r.started_at, r.error, w.state, "
        "w.attempt AS work_attempt FROM runs r LEFT JOIN due_work w ON w.run_id = r.id "
        "WHERE r.id = $1",
        run_id,
    )


async def test_a_run_whose_bound_does_not_fit_stays_queued_untouched(
    pool: asyncpg.Pool, settings: Settings, make_task: Any
) -> None:
    clock = running_clock()
    long = await make_task(payload=nap(0.1, timeout_s=30))  # bound 31 s
    short = await make_task(payload=ECHO)  # bound RUN_OVERHEAD_S
    assert long["run_bound_s"] == 30 + RUN_OVERHEAD_S
    (long_run,) = await queue_runs(pool, long, at=START)
    (short_run,) = await queue_runs(pool, short, at=START)
    worker = Worker(pool, settings, clock, worker_id="lambda:1")
    assert await worker.drain(3.0) == 1
    assert (await run_row(pool, short_run))["status"] == "succeeded"
    kept = await run_row(pool, long_run)
    # left for a worker with the time: not started, not released, attempt unchanged
    assert (kept["status"], kept["attempt"], kept["started_at"]) == ("queued", 1, None)
    assert (kept["state"], kept["work_attempt"]) == ("queued", 1)
    # a worker with the time takes it
    fresh = Worker(pool, settings, clock, worker_id="lambda:2")
    assert await fresh.drain(40.0) == 1
    assert (await run_row(pool, long_run))["status"] == "succeeded"


async def test_a_task_without_a_bound_counts_as_the_deployment_limit(
    pool: asyncpg.Pool, settings: Settings, make_task: Any
) -> None:
    """Tasks written before bounds existed (run_bound_s NULL) count as max_run_duration_s."""
    clock = running_clock()
    task = await make_task(payload=ECHO)
    await pool.execute("UPDATE tasks SET run_bound_s = NULL WHERE id = $1", task["id"])
    (run_id,) = await queue_runs(pool, task, at=START)
    limited = settings.replace(max_run_duration_s=10.0)
    assert await Worker(pool, limited, clock, worker_id="short").drain(2.0) == 0
    assert (await run_row(pool, run_id))["attempt"] == 1
    assert await Worker(pool, limited, clock, worker_id="long").drain(12.0) == 1
    assert (await run_row(pool, run_id))["status"] == "succeeded"


async def test_a_run_past_its_bound_fails_its_attempt(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock, make_task: Any
) -> None:
    task = await make_task(payload=nap(20, timeout_s=30), max_duration_s=0.2, max_retries=0)
    assert task["run_bound_s"] == 0.2
    (run_id,) = await queue_runs(pool, task, at=clock.now())
    worker = Worker(pool, settings, clock, worker_id="w")  # the long-running worker too
    assert await worker.run_once() == 1
    row = await run_row(pool, run_id)
    # no attempts left: a run that ends without success and is not retried is a dead letter
    assert row["status"] == "dead_letter"
    assert row["error"]["code"] == "run_timeout"
    assert "0.2 s" in row["error"]["message"]


async def test_a_run_cut_by_the_deadline_counts_its_attempt_and_never_loops(
    pool: asyncpg.Pool, settings: Settings, make_task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = running_clock()
    task = await make_task(payload=nap(30), max_duration_s=2, max_retries=1)  # two attempts
    (run_id,) = await queue_runs(pool, task, at=START)
    # A run that outlives its bound (a tool that ignores cancellation, a slow database): the
    # deadline is what stops it.
    monkeypatch.setattr(Attempts, "run_bound_s", lambda self, row: 3600.0)
    first = Worker(pool, settings, clock, worker_id="lambda:1")
    assert await first.drain(2.5) == 1
    row = await run_row(pool, run_id)
    assert (row["status"], row["attempt"], row["state"], row["work_attempt"]) == (
        "queued",
        2,
        "queued",
        2,
    )
    assert row["error"]["code"] == "worker_deadline"
    assert first.tally["retry"] == 1
    second = Worker(pool, settings, clock, worker_id="lambda:2")
    assert await second.drain(2.5) == 1
    row = await run_row(pool, run_id)
    assert (row["status"], row["attempt"], row["state"]) == ("dead_letter", 2, None)
    assert second.tally["dead_letter"] == 1
    events = await pool.fetch(
        "SELECT event_type FROM outbox WHERE subject_id = $1 ORDER BY seq", run_id
    )
    assert [e["event_type"] for e in events][-1] == "run.dead_lettered"
    # nothing is left to repeat
    assert await Worker(pool, settings, clock, worker_id="lambda:3").drain(1.0) == 0


async def test_drain_waits_for_work_due_within_its_budget(
    pool: asyncpg.Pool, settings: Settings, make_task: Any
) -> None:
    clock = running_clock()
    task = await make_task(payload=ECHO)
    (now_run,) = await queue_runs(pool, task, at=START)
    (soon,) = await queue_runs(pool, task, at=START + timedelta(seconds=1.5))
    (later,) = await queue_runs(pool, task, at=START + timedelta(seconds=600))
    worker = Worker(pool, settings, clock, worker_id="lambda:1")
    # the old drain returned after the first run: nothing was due at that instant
    assert await worker.drain(5.0) == 2
    assert (await run_row(pool, now_run))["status"] == "succeeded"
    assert (await run_row(pool, soon))["status"] == "succeeded"
    assert (await run_row(pool, later))["status"] == "queued"  # beyond the budget


def test_bounds_are_checked_when_the_task_is_written(settings: Settings) -> None:
    registry = default_registry(settings)
    base: dict[str, Any] = {
        "title": "t",
        "schedule_kind": "cron",
        "schedule_expr": "* * * * *",
        "timezone": "UTC",
        "payload": nap(1, timeout_s=300),
    }
    limited = settings.replace(max_run_duration_s=120.0)
    with pytest.raises(ValidationFailed) as too_long:
        prepare(base, now=START, settings=limited, registry=registry)
    (problem,) = too_long.value.details or []
    assert problem["field"] == "payload.pipeline"
    assert "max_duration_s" in problem["message"]
    assert "301" in problem["message"]
    with pytest.raises(ValidationFailed) as over:
        prepare({**base, "max_duration_s": 121}, now=START, settings=limited, registry=registry)
    assert [p["field"] for p in over.value.details or []] == ["max_duration_s"]
    ok = prepare({**base, "max_duration_s": 90}, now=START, settings=limited, registry=registry)
    assert (ok["max_duration_s"], ok["run_bound_s"]) == (90, 90.0)
    # retries and backoffs count: 3 attempts x 20 s + 2 x 5 s backoff + the overhead
    retried = {
        "pipeline": [
            {
                "id": "nap",
                "uses": "wait",
                "with": {"seconds": 1},
                "timeout_seconds": 20,
                "retry": {"attempts": 3, "backoff_seconds": 5},
            }
        ]
    }
    out = prepare({**base, "payload": retried}, now=START, settings=limited, registry=registry)
    assert out["run_bound_s"] == 3 * 20 + 2 * 5 + RUN_OVERHEAD_S
