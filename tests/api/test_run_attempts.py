"""Every attempt of a run (``GET /runs/{id}/attempts``) and what needs attention
(``GET /runs/attention``), through the API over a real worker: attempts that were retried are
kept with their own errors and steps, a first-attempt success writes no attempt record, and
another agent reads none of it."""

from __future__ import annotations

import random
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from samples import FAILING_PAYLOAD

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

SCOPES = ["tasks:read", "tasks:write", "runs:read"]
BACKOFF_S = 30
# The second attempt fails differently: a step reads a parameter that is not there.
FAILING_AGAIN: dict[str, Any] = {
    "params": {},
    "pipeline": [
        {"id": "first", "uses": "echo", "with": {"a": 1}},
        {"id": "boom", "uses": "transform", "with": {"value": "${params.missing.deeper}"}},
    ],
}
FIXED: dict[str, Any] = {
    "params": {},
    "pipeline": [
        {"id": "first", "uses": "echo", "with": {"a": 1}},
        {"id": "boom", "uses": "transform", "with": {"value": "${steps.first.output.a}"}},
    ],
}


@pytest.fixture
def worker(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> Worker:
    return Worker(
        pool,
        settings.replace(backoff_base_s=BACKOFF_S),
        clock,
        worker_id="attempts-worker",
        rng=random.Random(0),
    )


def _task(payload: dict[str, Any], *, max_retries: int = 2, title: str = "flaky") -> dict[str, Any]:
    return {
        "title": title,
        "schedule_kind": "event",
        "schedule_expr": "never.published",
        "payload": payload,
        "max_retries": max_retries,
        "backoff_strategy": "fixed",
    }


async def _create(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    r = await client.post("/tasks", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _run_now(client: httpx.AsyncClient, headers: dict[str, str], task_id: str) -> str:
    r = await client.post(f"/tasks/{task_id}/run_now", headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["run_id"])


async def _attempts(client: httpx.AsyncClient, headers: dict[str, str], run_id: str) -> Any:
    r = await client.get(f"/runs/{run_id}/attempts", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_run_retried_twice_then_succeeding_lists_three_attempts_in_order(
    client: httpx.AsyncClient,
    make_agent: Any,
    worker: Worker,
    pool: asyncpg.Pool,
    clock: FrozenClock,
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    task_id = await _create(client, headers, _task(FAILING_PAYLOAD))
    run_id = await _run_now(client, headers, task_id)
    started_first = clock.now()
    assert await worker.run_once() == 1

    # Waiting for its retry: the failed attempt, then the queued one with nothing of its own
    # (the run's record still carries the failed attempt's error).
    doc = await _attempts(client, headers, run_id)
    assert (doc["run_id"], doc["task_id"], doc["status"], doc["attempt"]) == (
        run_id,
        task_id,
        "queued",
        2,
    )
    first, waiting = doc["attempts"]
    assert (first["attempt"], first["status"], first["current"]) == (1, "failed", False)
    assert first["error"]["code"] == "expression_error"
    assert first["started_at"] == started_first.isoformat().replace("+00:00", "Z")
    assert first["worker_id"] == "attempts-worker"
    assert [s["id"] for s in first["step_results"]] == ["first", "boom"]
    assert [s["status"] for s in first["step_results"]] == ["succeeded", "failed"]
    assert waiting == {
        "attempt": 2,
        "status": "queued",
        "current": True,
        "started_at": None,
        "finished_at": None,
        "duration_ms": None,
        "output": None,
        "error": None,
        "step_results": [],
        "worker_id": None,
    }

    # The second attempt fails differently (the task was edited between the two).
    r = await client.patch(f"/tasks/{task_id}", json={"payload": FAILING_AGAIN}, headers=headers)
    assert r.status_code == 200, r.text
    clock.advance(BACKOFF_S)
    assert await worker.run_once() == 1
    # And the third succeeds.
    r = await client.patch(f"/tasks/{task_id}", json={"payload": FIXED}, headers=headers)
    assert r.status_code == 200, r.text
    clock.advance(BACKOFF_S)
    assert await worker.run_once() == 1

    doc = await _attempts(client, headers, run_id)
    assert (doc["status"], doc["attempt"]) == ("succeeded", 3)
    attempts = doc["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status"] for a in attempts] == ["failed", "failed", "succeeded"]
    assert [a["current"] for a in attempts] == [False, False, True]
    assert "nope" in attempts[0]["error"]["message"]
    assert "missing" in attempts[1]["error"]["message"]
    assert attempts[0]["error"] != attempts[1]["error"]
    assert attempts[2]["error"] is None
    for attempt in attempts:
        assert [s["id"] for s in attempt["step_results"]] == ["first", "boom"]
        assert attempt["worker_id"] == "attempts-worker"
    assert [s["status"] for s in attempts[2]["step_results"]] == ["succeeded", "succeeded"]
    # Each attempt started after the one before ended (the backoff between them).
    for before, after in zip(attempts, attempts[1:], strict=False):
        assert before["finished_at"] <= after["started_at"]
    # GET /runs/{id} is unchanged: the final attempt's record.
    run = (await client.get(f"/runs/{run_id}", headers=headers)).json()
    assert (run["status"], run["attempt"]) == ("succeeded", 3)
    assert run["step_results"] == attempts[2]["step_results"]
    assert run["output"] is not None
    assert attempts[2]["output"] == run["output"]
    stored = await pool.fetch(
        "SELECT attempt FROM run_attempts WHERE run_id = $1 ORDER BY attempt", uuid.UUID(run_id)
    )
    assert [r["attempt"] for r in stored] == [1, 2]


async def test_a_first_attempt_success_writes_no_attempt_record(
    client: httpx.AsyncClient, make_agent: Any, worker: Worker, pool: asyncpg.Pool
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    task_id = await _create(client, headers, _task(FIXED))
    run_id = await _run_now(client, headers, task_id)
    assert await worker.run_once() == 1
    assert await pool.fetchval("SELECT count(*) FROM run_attempts") == 0
    doc = await _attempts(client, headers, run_id)
    (only,) = doc["attempts"]
    assert (only["attempt"], only["status"], only["current"]) == (1, "succeeded", True)
    assert [s["status"] for s in only["step_results"]] == ["succeeded", "succeeded"]
    assert only["duration_ms"] is not None


async def test_a_dead_letter_retried_by_hand_keeps_its_attempt_and_leaves_attention(
    client: httpx.AsyncClient, make_agent: Any, worker: Worker, clock: FrozenClock
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    task_id = await _create(client, headers, _task(FAILING_PAYLOAD, max_retries=0))
    run_id = await _run_now(client, headers, task_id)
    assert await worker.run_once() == 1
    attention = (await client.get("/runs/attention", headers=headers)).json()
    assert [r["id"] for r in attention["dead_letters"]] == [run_id]
    assert attention["dead_letters"][0]["task_title"] == "flaky"
    assert [t["task_id"] for t in attention["failing_tasks"]] == [task_id]

    clock.advance(60)
    r = await client.post(f"/runs/{run_id}/retry", headers=headers)
    assert r.status_code == 202, r.text
    doc = await _attempts(client, headers, run_id)
    dead, retried = doc["attempts"]
    assert (dead["attempt"], dead["status"], dead["current"]) == (1, "dead_letter", False)
    assert dead["error"]["code"] == "expression_error"
    assert [s["id"] for s in dead["step_results"]] == ["first", "boom"]
    assert (retried["attempt"], retried["status"], retried["error"]) == (2, "queued", None)
    # Retried: no longer a dead letter; its task's last finished run is still the failure
    # until the retry ends (the retry is queued, not finished).
    attention = (await client.get("/runs/attention", headers=headers)).json()
    assert attention["dead_letters"] == []
    assert attention["dead_letters_total"] == 0


async def test_attention_spans_all_history_and_clears_when_a_task_recovers(
    client: httpx.AsyncClient,
    make_agent: Any,
    worker: Worker,
    pool: asyncpg.Pool,
    clock: FrozenClock,
) -> None:
    agent = await make_agent(SCOPES)
    headers = agent["headers"]
    broken = await _create(client, headers, _task(FAILING_PAYLOAD, max_retries=0, title="broken"))
    healed = await _create(client, headers, _task(FAILING_PAYLOAD, max_retries=0, title="healed"))
    busy = await _create(client, headers, _task(FIXED, title="busy"))
    old_dead = await _run_now(client, headers, broken)
    healed_dead = await _run_now(client, headers, healed)
    assert await worker.run_once() == 2
    # The healed task is fixed and its next run succeeds: its dead letter stays to be dealt
    # with, but the task's last run no longer failed.
    r = await client.patch(f"/tasks/{healed}", json={"payload": FIXED}, headers=headers)
    assert r.status_code == 200, r.text
    clock.advance(1)
    await _run_now(client, headers, healed)
    assert await worker.run_once() == 1
    # 500 newer runs of another task, all succeeded (written directly: history, not the point).
    clock.advance(1)
    await pool.execute(
        """
        INSERT INTO runs (id, task_id, owner_id, slot, trigger, scheduled_for, status, attempt,
                          started_at, finished_at, duration_ms, idempotency_key, created_at,
                          updated_at)
        SELECT gen_random_uuid(), $1, $2, 'manual:' || g, 'run_now',
               $3::timestamptz + make_interval(secs => g), 'succeeded', 1, $3::timestamptz + make_interval(secs => g),
               $3::timestamptz + make_interval(secs => g), 0, 'k' || g, $3::timestamptz + make_interval(secs => g),
               $3::timestamptz + make_interval(secs => g)
        FROM generate_series(1, 500) g
        """,
        uuid.UUID(busy),
        uuid.UUID(agent["agent_id"]),
        clock.now(),
    )
    r = await client.get("/runs/attention", params={"limit": 1}, headers=headers)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["limit"] == 1
    assert doc["dead_letters_total"] == 2
    assert len(doc["dead_letters"]) == 1  # the newest of the two
    assert doc["dead_letters"][0]["id"] in (old_dead, healed_dead)
    assert doc["failing_tasks_total"] == 1
    (failing,) = doc["failing_tasks"]
    assert (failing["task_id"], failing["title"], failing["task_status"]) == (
        broken,
        "broken",
        "active",
    )
    assert (failing["run_id"], failing["status"]) == (old_dead, "dead_letter")
    assert failing["error"]["code"] == "expression_error"
    doc = (await client.get("/runs/attention", headers=headers)).json()
    assert sorted(r["id"] for r in doc["dead_letters"]) == sorted([old_dead, healed_dead])
    # Deleting the task deals with its dead letters too.
    r = await client.delete(f"/tasks/{broken}", headers=headers)
    assert r.status_code == 204
    doc = (await client.get("/runs/attention", headers=headers)).json()
    assert [r["id"] for r in doc["dead_letters"]] == [healed_dead]
    assert doc["failing_tasks"] == []
    assert doc["failing_tasks_total"] == 0


async def test_attention_and_attempts_stay_with_their_owner(
    client: httpx.AsyncClient,
    make_agent: Any,
    admin: dict[str, Any],
    worker: Worker,
    clock: FrozenClock,
) -> None:
    a = (await make_agent(SCOPES, name="a"))["headers"]
    b = (await make_agent(SCOPES, name="b"))["headers"]
    task_id = await _create(client, a, _task(FAILING_PAYLOAD, max_retries=1))
    run_id = await _run_now(client, a, task_id)
    assert await worker.run_once() == 1
    clock.advance(BACKOFF_S)
    assert await worker.run_once() == 1  # dead-lettered at its second attempt
    assert [x["attempt"] for x in (await _attempts(client, a, run_id))["attempts"]] == [1, 2]

    # Agent B: no such run, and nothing needs its attention.
    r = await client.get(f"/runs/{run_id}/attempts", headers=b)
    assert r.status_code == 404
    assert r.json()["error"]["details"]["run_id"] == run_id
    r = await client.get(f"/runs/{run_id}/attempts", params={"owner": "*"}, headers=b)
    assert r.status_code == 403
    doc = (await client.get("/runs/attention", headers=b)).json()
    assert (doc["dead_letters"], doc["failing_tasks"]) == ([], [])
    assert (doc["dead_letters_total"], doc["failing_tasks_total"]) == (0, 0)
    # An admin reads any agent's with owner=*.
    r = await client.get(
        f"/runs/{run_id}/attempts", params={"owner": "*"}, headers=admin["headers"]
    )
    assert r.status_code == 200
    assert [x["status"] for x in r.json()["attempts"]] == ["failed", "dead_letter"]
    r = await client.get("/runs/attention", params={"limit": 0}, headers=a)
    assert r.status_code == 422
    assert "limit" in r.text


async def test_attention_titles_need_tasks_read(
    client: httpx.AsyncClient, pool: asyncpg.Pool, worker: Worker, make_agent: Any
) -> None:
    agent = await make_agent(SCOPES)
    task_id = await _create(client, agent["headers"], _task(FAILING_PAYLOAD, max_retries=0))
    await _run_now(client, agent["headers"], task_id)
    assert await worker.run_once() == 1
    # The same agent, with a token that only reads runs.
    await pool.execute(
        "UPDATE agent_tokens SET scopes = ARRAY['runs:read'] WHERE agent_id = $1",
        uuid.UUID(agent["agent_id"]),
    )
    doc = (await client.get("/runs/attention", headers=agent["headers"])).json()
    assert doc["dead_letters_total"] == 1
    assert doc["dead_letters"][0]["task_title"] is None
    assert doc["failing_tasks"][0]["title"] is None
