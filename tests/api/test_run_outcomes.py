"""How runs end, as the API shows them: every run that ended without success and will not be
retried is a dead letter (with max_retries 0 too); errors no retry can fix are dead-lettered
at once with the reason; duration_ms agrees with started_at and finished_at."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from samples import FAILING_PAYLOAD

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.store import work
from ordinaut.worker import Worker

SCOPES = ["tasks:read", "tasks:write", "runs:read"]


def _task(payload: dict[str, Any], max_retries: int, **extra: Any) -> dict[str, Any]:
    return {
        "title": "outcome",
        "schedule_kind": "event",
        "schedule_expr": "never.published",
        "payload": payload,
        "max_retries": max_retries,
        "backoff_strategy": "fixed",
        **extra,
    }


async def _run_once(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    worker: Worker,
    body: dict[str, Any],
) -> dict[str, Any]:
    """Create the task, queue a run now, let the worker take it once; the run afterwards."""
    r = await client.post("/tasks", json=body, headers=headers)
    assert r.status_code == 201, r.text
    queued = await client.post(f"/tasks/{r.json()['id']}/run_now", headers=headers)
    assert queued.status_code == 202, queued.text
    assert await worker.run_once() == 1
    run = await client.get(f"/runs/{queued.json()['run_id']}", headers=headers)
    assert run.status_code == 200
    return dict(run.json())


@pytest.fixture
def worker(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> Worker:
    return Worker(pool, settings, clock, worker_id="outcomes", rng=random.Random(0))


async def _dead_letters(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    r = await client.get("/runs", params={"status": "dead_letter"}, headers=headers)
    assert r.status_code == 200
    return [run["id"] for run in r.json()["items"]]


async def test_a_run_without_retries_that_fails_is_a_dead_letter(
    client: httpx.AsyncClient, make_agent: Any, worker: Worker
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    run = await _run_once(client, headers, worker, _task(FAILING_PAYLOAD, max_retries=0))
    assert run["status"] == "dead_letter"
    assert run["success"] is False
    assert run["error"]["code"] == "expression_error"
    assert run["id"] in await _dead_letters(client, headers)
    stats = (await client.get("/runs/stats/summary", headers=headers)).json()
    assert (stats["runs"]["dead_letter"], stats["runs"]["failed"]) == (1, 0)


async def test_a_failure_a_retry_may_fix_is_still_retried(
    client: httpx.AsyncClient, make_agent: Any, worker: Worker
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    run = await _run_once(client, headers, worker, _task(FAILING_PAYLOAD, max_retries=2))
    assert (run["status"], run["attempt"]) == ("queued", 2)  # waiting for its retry
    assert run["id"] not in await _dead_letters(client, headers)


NOT_RETRYABLE = {
    "egress_refused": {
        "params": {"url": "http://127.0.0.1:9/never"},
        "pipeline": [{"id": "fetch", "uses": "http.request", "with": {"url": "${params.url}"}}],
    },
    "invalid_arguments": {
        "params": {"method": "BREW"},
        "pipeline": [
            {
                "id": "fetch",
                "uses": "http.request",
                "with": {"url": "https://example.invalid/", "method": "${params.method}"},
            }
        ],
    },
    "secret_missing": {
        "params": {},
        "pipeline": [{"id": "say", "uses": "echo", "with": {"text": "${secrets.NOT_STORED}"}}],
    },
}


@pytest.mark.parametrize("code", sorted(NOT_RETRYABLE))
async def test_an_error_no_retry_can_fix_is_dead_lettered_at_once(
    client: httpx.AsyncClient, make_agent: Any, worker: Worker, code: str
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    run = await _run_once(client, headers, worker, _task(NOT_RETRYABLE[code], max_retries=5))
    assert (run["status"], run["attempt"]) == ("dead_letter", 1)
    assert run["error"]["code"] == code
    assert run["error"]["retried"] is False
    assert code in run["error"]["why_not_retried"]
    assert run["id"] in await _dead_letters(client, headers)


async def test_a_missing_secret_read_with_a_default_is_not_an_error(
    client: httpx.AsyncClient, make_agent: Any, worker: Worker
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    payload = {
        "params": {},
        "pipeline": [{"id": "say", "uses": "echo", "with": {"text": "${secrets.OPT || 'none'}"}}],
    }
    run = await _run_once(client, headers, worker, _task(payload, max_retries=0))
    assert run["status"] == "succeeded", run["error"]


def _ms(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_duration_ms_agrees_with_started_and_finished_at(
    client: httpx.AsyncClient,
    make_agent: Any,
    worker: Worker,
    pool: asyncpg.Pool,
    clock: FrozenClock,
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    body = _task({"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {"x": 1}}]}, 0)
    task = (await client.post("/tasks", json=body, headers=headers)).json()
    run_id = (await client.post(f"/tasks/{task['id']}/run_now", headers=headers)).json()["run_id"]
    (row,) = await worker.lease(1)
    finished = clock.now() + timedelta(milliseconds=12)
    # the worker's own stopwatch said 0 ms (a coarse timer); the stored times say 12
    outcome = work.Outcome(row.run_id, row.lease_token, row.attempt, "succeeded", finished, 0)
    assert await worker.record(outcome, []) is True
    run = (await client.get(f"/runs/{run_id}", headers=headers)).json()
    span = _ms(run["finished_at"]) - _ms(run["started_at"])
    assert span == timedelta(milliseconds=12)
    assert run["duration_ms"] == 12
