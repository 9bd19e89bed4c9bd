"""The worker Lambda: an SQS wake-up drains due work for the remaining time minus a margin."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
from fn_support import FakeContext, HandlerLoader, TaskFactory, call, db_now, queue_now

from ordinaut import notifications
from ordinaut.secrets import SecretBox, new_key
from ordinaut.store import outbox, work
from ordinaut.store import secrets as secrets_store

pytestmark = pytest.mark.cloud


def wakeup(body: str = '{"source": "ordinaut.tick"}') -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": "5fea7756-0ea4-451a-a703-a558b933e274",
                "receiptHandle": "r-1",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:ordinaut-dev-work",
                "awsRegion": "eu-west-1",
            }
        ]
    }


async def test_wakeup_runs_queued_work_to_success(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    make_task: TaskFactory,
    pool: asyncpg.Pool,
) -> None:
    lambda_env.setenv("ORDINAUT_DRAIN_MARGIN_S", "1")
    task = await make_task(schedule_kind="once", schedule_expr="2099-01-01T00:00:00Z")
    (run_id,) = await queue_now(pool, task)
    worker = await load_handler("worker")
    context = FakeContext(remaining_ms=4_000)
    result = await call(worker.handler, wakeup("ignored"), context)
    assert result["ran"] == 1
    assert 0 < result["budget_s"] <= 3.0
    run = await pool.fetchrow("SELECT status, output, attempt FROM runs WHERE id = $1", run_id)
    assert run["status"] == "succeeded"
    assert run["output"] == {"msg": "hello"}
    assert await pool.fetchval("SELECT count(*) FROM due_work") == 0
    leased_by = await pool.fetchval(
        "SELECT count(*) FROM worker_heartbeats WHERE worker_id = $1",
        f"lambda:{context.aws_request_id}",
    )
    assert leased_by == 0  # the invocation's worker row is gone with it
    # the run's lifecycle events went out through the outbox to Redis
    assert result["relayed"] >= 1
    assert await outbox.backlog(pool) == 0


async def test_no_time_left_returns_at_once(
    load_handler: HandlerLoader, lambda_env: pytest.MonkeyPatch
) -> None:
    lambda_env.setenv("ORDINAUT_DRAIN_MARGIN_S", "5")
    worker = await load_handler("worker")
    result = await call(worker.handler, wakeup(), FakeContext(remaining_ms=4_000))
    assert result == {"ran": 0, "budget_s": -1.0, "relayed": 0}
    assert worker.container.pool is None  # did not even connect


async def test_idle_wakeup_keeps_the_pool_for_the_next(load_handler: HandlerLoader) -> None:
    worker = await load_handler("worker")
    first = await call(worker.handler, wakeup(), FakeContext(remaining_ms=10_000))
    pool = worker.container.pool
    second = await call(worker.handler, wakeup(), FakeContext(remaining_ms=10_000))
    assert first["ran"] == second["ran"] == 0
    assert pool is not None
    assert worker.container.pool is pool


async def test_logs_are_powertools_json_with_request_and_run_ids(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    make_task: TaskFactory,
    pool: asyncpg.Pool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In Lambda every ordinaut.* log line is one JSON object with the Lambda context and
    Ordinaut's log context."""
    lambda_env.setenv("AWS_LAMBDA_FUNCTION_NAME", "ordinaut-test-worker")
    failing = {
        "pipeline": [
            {"id": "first", "uses": "echo", "with": {"a": 1}},
            {"id": "boom", "uses": "transform", "with": {"value": "${steps.first.output.no}"}},
        ]
    }
    task = await make_task(
        schedule_kind="once", schedule_expr="2099-01-01T00:00:00Z", payload=failing
    )
    (run_id,) = await queue_now(pool, task)
    worker = await load_handler("worker")
    context = FakeContext(remaining_ms=8_000)
    result = await call(worker.handler, wakeup(), context)
    assert result["ran"] == 1
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    failed = [line for line in lines if line.get("message") == "run attempt failed"]
    assert len(failed) == 1
    line = failed[0]
    assert line["level"] == "WARNING"
    assert line["service"] == "ordinaut-test"
    assert line["function_request_id"] == context.aws_request_id
    assert line["request_id"] == context.aws_request_id
    assert line["run_id"] == str(run_id)
    assert line["task_id"] == str(task["id"])
    assert line["outcome"] == "dead_letter"


async def test_a_run_longer_than_its_lease_keeps_it(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    make_task: TaskFactory,
    pool: asyncpg.Pool,
) -> None:
    """The Lambda driver heartbeats like the long-running worker: no rescue, no second run."""
    lambda_env.setenv("ORDINAUT_LEASE_SECONDS", "1.5")
    lambda_env.setenv("ORDINAUT_HEARTBEAT_S", "0.2")
    lambda_env.setenv("ORDINAUT_DRAIN_MARGIN_S", "1")
    slow = {"pipeline": [{"id": "nap", "uses": "wait", "with": {"seconds": 2.5}}]}
    task = await make_task(
        schedule_kind="once", schedule_expr="2099-01-01T00:00:00Z", payload=slow, max_duration_s=4
    )
    (run_id,) = await queue_now(pool, task)
    worker = await load_handler("worker")
    running = asyncio.create_task(call(worker.handler, wakeup(), FakeContext(remaining_ms=8_000)))
    await asyncio.sleep(2.0)  # past the first lease's expiry
    async with pool.acquire() as conn, conn.transaction():
        rescued = await work.rescue_expired(conn, now=await db_now(pool))
    assert rescued == []
    result = await running
    assert result["ran"] == 1
    run = await pool.fetchrow("SELECT status, attempt FROM runs WHERE id = $1", run_id)
    assert (run["status"], run["attempt"]) == ("succeeded", 1)


async def test_drain_emits_its_outcomes_as_emf_metrics(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    make_task: TaskFactory,
    pool: asyncpg.Pool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lambda_env.setenv("ORDINAUT_DRAIN_MARGIN_S", "1")
    ok = await make_task(schedule_kind="once", schedule_expr="2099-01-01T00:00:00Z")
    failing = {
        "pipeline": [
            {"id": "first", "uses": "echo", "with": {"a": 1}},
            {"id": "boom", "uses": "transform", "with": {"value": "${steps.first.output.nope}"}},
        ]
    }
    doomed = await make_task(
        schedule_kind="once", schedule_expr="2099-01-01T00:00:00Z", payload=failing, max_retries=1
    )
    await queue_now(pool, ok, n=2)
    (doomed_run,) = await queue_now(pool, doomed)
    # its last attempt: this failure dead-letters it
    await pool.execute("UPDATE due_work SET attempt = 2 WHERE run_id = $1", doomed_run)
    worker = await load_handler("worker")
    result = await call(worker.handler, wakeup(), FakeContext(remaining_ms=5_000))
    assert result["ran"] == 3
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (doc,) = emf
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Ordinaut"
    assert directive["Dimensions"] == [["service"]]
    assert doc["service"] == "ordinaut-test"
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names == {
        "RunsSucceeded": "Count",
        "RunsFailed": "Count",
        "RunsDeadLettered": "Count",
        "StartLagMs": "Milliseconds",
    }
    assert (doc["RunsSucceeded"], doc["RunsFailed"], doc["RunsDeadLettered"]) == (
        [2.0],
        [1.0],
        [1.0],
    )
    assert doc["StartLagMs"][0] >= 0


async def test_a_drain_sends_the_notifications_of_the_runs_it_ended(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    make_task: TaskFactory,
    pool: asyncpg.Pool,
    owner: uuid.UUID,
) -> None:
    received: list[tuple[str, str]] = []

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            received.append((self.headers["Ordinaut-Signature"], body))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    key, value = new_key(), "lambda-hook-secret"
    lambda_env.setenv("ORDINAUT_DRAIN_MARGIN_S", "2")
    lambda_env.setenv("ORDINAUT_SECRETS_KEY", key)
    lambda_env.setenv("ORDINAUT_EGRESS_ALLOWLIST", f"127.0.0.1:{port}")
    try:
        task = await make_task(schedule_kind="once", schedule_expr="2099-01-01T00:00:00Z")
        notify = [{"url": f"http://127.0.0.1:{port}/", "on": ["succeeded"], "secret": "HOOK"}]
        await pool.execute(
            "UPDATE tasks SET payload = payload || jsonb_build_object('notify', $2::text::jsonb)"
            " WHERE id = $1",
            task["id"],
            json.dumps(notify),
        )
        async with pool.acquire() as conn:
            await secrets_store.put(
                conn, owner, "HOOK", SecretBox(key).seal(value), task["created_at"]
            )
        (run_id,) = await queue_now(pool, task)
        worker = await load_handler("worker")
        result = await call(worker.handler, wakeup(), FakeContext(remaining_ms=5_000))
    finally:
        server.shutdown()
        server.server_close()
    assert result["ran"] == 1
    assert result["notifications_sent"] == 1
    [(signature, body)] = received
    assert json.loads(body)["run"]["id"] == str(run_id)
    t = int(signature.split(",")[0][2:])
    assert notifications.verify(value, signature, body, now=datetime.fromtimestamp(t, UTC))
    status = await pool.fetchval("SELECT status FROM notifications WHERE run_id = $1", run_id)
    assert status == "delivered"
