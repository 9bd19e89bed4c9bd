"""The scheduler Lambda: one tick per EventBridge Scheduler event, EMF metrics, SQS wake-ups."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import boto3
import pytest
from fn_support import FakeContext, HandlerLoader, TaskFactory, call, queue_now
from moto import mock_aws

from ordinaut import cloud

pytestmark = pytest.mark.cloud

LAMBDA_APP = "application_name=ordinaut-lambda-test"
TICK_EVENT = {
    "source": "ordinaut.tick",
    "scheduled_time": "2026-03-02T12:00:00Z",
    "execution_id": "b0e5c5e2-0000-4000-8000-000000000001",
}


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    docs = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


async def test_tick_materializes_due_work_and_emits_lag_metrics(
    load_handler: HandlerLoader,
    make_task: TaskFactory,
    pool: asyncpg.Pool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = await make_task(schedule_expr="* * * * *")  # next minute: inside the lookahead
    scheduler = await load_handler("scheduler")
    result = await call(scheduler.handler, TICK_EVENT, FakeContext(function_name="sched"))
    assert result["materialized"] >= 1
    runs = await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", task["id"])
    assert runs == result["materialized"]
    state = await pool.fetchrow("SELECT * FROM scheduler_state WHERE name = 'lambda:sched'")
    assert state is not None
    assert state["last_materialized"] == result["materialized"]

    (doc,) = emf_documents(capsys.readouterr().out)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Ordinaut"
    assert directive["Dimensions"] == [["service"]]
    assert doc["service"] == "ordinaut-test"
    names = {m["Name"] for m in directive["Metrics"]}
    assert names == {"DueWorkLagSeconds", "SlotsMaterialized", "TickDurationMs", "LeasesRescued"}
    assert doc["DueWorkLagSeconds"] in (0.0, [0.0])
    assert doc["SlotsMaterialized"] in (result["materialized"], [result["materialized"]])


async def test_a_second_tick_is_idempotent_on_the_warm_pool(
    load_handler: HandlerLoader, make_task: TaskFactory
) -> None:
    await make_task(schedule_expr="* * * * *")
    scheduler = await load_handler("scheduler")
    first = await call(scheduler.handler, TICK_EVENT, FakeContext())
    pool = scheduler.container.pool
    again = await call(scheduler.handler, TICK_EVENT, FakeContext())
    assert first["materialized"] >= 1
    assert again["materialized"] == 0
    assert scheduler.container.pool is pool is not None


async def test_lost_connections_are_replaced_on_the_next_invocation(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    servers: dict[str, str],
    make_task: TaskFactory,
    pool: asyncpg.Pool,
) -> None:
    """A thawed container whose sockets the server closed gets a new pool, not an error."""
    sep = "&" if "?" in servers["database_url"] else "?"
    lambda_env.setenv("ORDINAUT_DATABASE_URL", f"{servers['database_url']}{sep}{LAMBDA_APP}")
    scheduler = await load_handler("scheduler")
    await call(scheduler.handler, TICK_EVENT, FakeContext())
    stale = scheduler.container.pool
    killed = await pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'ordinaut-lambda-test'"
    )
    assert killed >= 1
    await make_task(schedule_expr="* * * * *")
    result = await call(scheduler.handler, TICK_EVENT, FakeContext())
    assert result["materialized"] >= 1
    assert scheduler.container.pool is not None
    assert scheduler.container.pool is not stale


async def test_wakeups_fan_out_to_the_work_queue(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    make_task: TaskFactory,
    pool: asyncpg.Pool,
) -> None:
    task = await make_task(schedule_kind="once", schedule_expr="2099-01-01T00:00:00Z")
    await queue_now(pool, task, n=40)
    lambda_env.setenv("ORDINAUT_WORKER_CONCURRENCY", "10")
    lambda_env.setenv(cloud.FANOUT_MAX_ENV, "3")
    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="ordinaut-test-work")["QueueUrl"]
        lambda_env.setenv(cloud.WORK_QUEUE_ENV, url)
        scheduler = await load_handler("scheduler")
        result = await call(scheduler.handler, TICK_EVENT, FakeContext())
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert result["queued"] == 40
    assert result["wakeups"] == 3  # ceil(40 / 10) = 4, capped at 3
    assert result["wakeup_delay_s"] == 0
    assert len(received) == 3
    assert json.loads(received[0]["Body"])["source"] == "ordinaut.tick"


async def test_no_wakeups_while_nothing_is_due_before_the_next_tick(
    load_handler: HandlerLoader, lambda_env: pytest.MonkeyPatch, make_task: TaskFactory
) -> None:
    await make_task(schedule_expr="0 0 1 1 *")  # far away: nothing to materialize or wake for
    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="ordinaut-test-idle")["QueueUrl"]
        lambda_env.setenv(cloud.WORK_QUEUE_ENV, url)
        scheduler = await load_handler("scheduler")
        result = await call(scheduler.handler, TICK_EVENT, FakeContext())
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
    assert result["materialized"] == 0
    assert result["wakeups"] == 0
    assert attributes["ApproximateNumberOfMessages"] == "0"


@pytest.mark.parametrize(
    ("queued", "batch", "most", "expected"),
    [
        (0, 16, 4, 0),
        (1, 16, 4, 1),
        (16, 16, 4, 1),
        (17, 16, 4, 2),
        (1000, 16, 4, 4),
        (5, 0, 4, 4),
        (5, 16, 0, 0),
    ],
)
def test_wakeups_needed(queued: int, batch: int, most: int, expected: int) -> None:
    assert cloud.wakeups_needed(queued, batch, most) == expected
