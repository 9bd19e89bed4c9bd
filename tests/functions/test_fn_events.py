"""The events Lambda: SQS batches with partial failures (EventBridge events arrive in them),
records that can never be ingested parked at once, one ingest path."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import boto3
import pytest
from fn_support import FakeContext, HandlerLoader, TaskFactory, call
from moto import mock_aws
from redis.asyncio import Redis

from functions.events.invocation import BadEvent, from_eventbridge, from_sqs_body
from ordinaut.events import DEAD_STREAM

pytestmark = pytest.mark.cloud


def sqs_record(message_id: str, body: Any) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"r-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:ordinaut-dev-events",
        "awsRegion": "eu-west-1",
    }


def eventbridge(detail: dict[str, Any], *, event_id: str = "eb-1") -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "orders.created",
        "source": "shop",
        "account": "123456789012",
        "time": "2026-03-02T12:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
    }


async def parked(redis_url: str) -> list[dict[str, str]]:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        return [fields for _, fields in await client.xrange(DEAD_STREAM)]
    finally:
        await client.aclose()


@pytest.fixture
async def empty_dead_stream(servers: dict[str, str]) -> None:
    client = Redis.from_url(servers["redis_url"])
    try:
        await client.delete(DEAD_STREAM)
    finally:
        await client.aclose()


async def test_sqs_batch_parks_what_can_never_be_ingested(
    load_handler: HandlerLoader,
    make_task: TaskFactory,
    owner: uuid.UUID,
    pool: asyncpg.Pool,
    servers: dict[str, str],
    empty_dead_stream: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = await make_task(schedule_kind="event", schedule_expr="orders.*")
    good = {"tenant_id": str(owner), "topic": "orders.created", "payload": {"n": 1}}
    batch = {
        "Records": [
            sqs_record("m-good", good),
            sqs_record("m-not-json", "{not json"),
            sqs_record("m-stranger", {**good, "tenant_id": str(uuid.uuid4())}),
            sqs_record("m-bad-topic", {**good, "topic": "orders/*"}),
            sqs_record("m-extra", {**good, "secret": "x"}),
            sqs_record("m-keyed", {**good, "event_id": "order-42"}),
        ]
    }
    events = await load_handler("events")
    result = await call(events.handler, batch, FakeContext())
    # nothing to retry: four records can never be ingested and are parked, not redelivered
    assert result == {"batchItemFailures": []}
    dead = await parked(servers["redis_url"])
    assert [(d["message_id"], d["source"]) for d in dead] == [
        ("m-not-json", "sqs"),
        ("m-stranger", "sqs"),
        ("m-bad-topic", "sqs"),
        ("m-extra", "sqs"),
    ]
    reasons = {d["message_id"]: d["error"] for d in dead}
    assert reasons["m-not-json"] == "the body is not JSON"
    assert reasons["m-stranger"].startswith("unknown tenant")
    assert "secret" in reasons["m-extra"]
    assert dead[0]["body"] == "{not json"  # kept as sent, for whoever replays it
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[-1]["EventsIngested"] == [2.0]
    assert emf[-1]["EventsParked"] == [4.0]
    stored = await pool.fetch("SELECT event_id, source FROM events ORDER BY seq")
    assert [(r["event_id"], r["source"]) for r in stored] == [
        ("m-good", "sqs"),  # no event_id: the SQS message id makes redelivery idempotent
        ("order-42", "sqs"),
    ]
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", task["id"]) == 2

    # SQS redelivers the whole batch (say the function timed out): nothing runs twice
    again = await call(events.handler, batch, FakeContext())
    assert again == {"batchItemFailures": []}
    assert await pool.fetchval("SELECT count(*) FROM events") == 2
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", task["id"]) == 2


async def test_eventbridge_event_is_ingested_once(
    load_handler: HandlerLoader, make_task: TaskFactory, owner: uuid.UUID, pool: asyncpg.Pool
) -> None:
    task = await make_task(schedule_kind="event", schedule_expr="orders.created")
    event = eventbridge({"tenant_id": str(owner), "order": 42})
    events = await load_handler("events")
    first = await call(events.handler, event, FakeContext())
    assert first == {
        "event_id": "eb-1",
        "topic": "orders.created",
        "duplicate": False,
        "runs_queued": 1,
        "runs_refused": 0,
        "tasks_matched": 1,
    }
    retried = await call(events.handler, event, FakeContext())
    assert retried["duplicate"] is True
    assert retried["runs_queued"] == 0
    row = await pool.fetchrow("SELECT payload, source FROM events WHERE event_id = 'eb-1'")
    assert row["source"] == "eventbridge"
    assert row["payload"] == {"tenant_id": str(owner), "order": 42}
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", task["id"]) == 1


async def test_eventbridge_event_without_tenant_fails_the_invocation(
    load_handler: HandlerLoader,
) -> None:
    events = await load_handler("events")
    with pytest.raises(BadEvent, match="tenant_id"):
        await call(events.handler, eventbridge({"order": 42}), FakeContext())


async def test_anything_else_fails_the_invocation(load_handler: HandlerLoader) -> None:
    events = await load_handler("events")
    with pytest.raises(BadEvent, match="SQS batch or an EventBridge event"):
        await call(events.handler, {"hello": "world"}, FakeContext())


async def test_eventbridge_event_routed_through_the_ingest_queue(
    load_handler: HandlerLoader, make_task: TaskFactory, owner: uuid.UUID, pool: asyncpg.Pool
) -> None:
    """An EventBridge rule targets the ingest queue: the SQS body is the event's envelope."""
    task = await make_task(schedule_kind="event", schedule_expr="orders.created")
    envelope = eventbridge({"tenant_id": str(owner), "order": 7}, event_id="eb-7")
    batch = {"Records": [sqs_record("m-eb", envelope), sqs_record("m-eb-again", envelope)]}
    events = await load_handler("events")
    assert await call(events.handler, batch, FakeContext()) == {"batchItemFailures": []}
    row = await pool.fetchrow("SELECT payload, source FROM events WHERE event_id = 'eb-7'")
    assert row["source"] == "eventbridge"
    assert row["payload"] == {"tenant_id": str(owner), "order": 7}
    # the same EventBridge event twice (EventBridge delivers at least once): one run
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", task["id"]) == 1


async def test_unparkable_record_is_left_to_the_redrive_policy(
    load_handler: HandlerLoader, lambda_env: pytest.MonkeyPatch, owner: uuid.UUID
) -> None:
    """Without Redis to park in, a bad record is reported: SQS moves it to the DLQ."""
    lambda_env.delenv("ORDINAUT_REDIS_URL")
    events = await load_handler("events")
    result = await call(events.handler, {"Records": [sqs_record("m-bad", "{nope")]}, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}


async def test_queued_runs_wake_a_worker_once_per_batch(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    make_task: TaskFactory,
    owner: uuid.UUID,
) -> None:
    await make_task(schedule_kind="event", schedule_expr="orders.*")
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="ordinaut-test-work")["QueueUrl"]
        lambda_env.setenv("ORDINAUT_WORK_QUEUE_URL", url)
        events = await load_handler("events")
        body = {"tenant_id": str(owner), "topic": "orders.created"}
        batch = {"Records": [sqs_record(f"m-{i}", body) for i in range(3)]}
        assert await call(events.handler, batch, FakeContext()) == {"batchItemFailures": []}
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert len(messages) == 1
        assert json.loads(messages[0]["Body"])["source"] == "ordinaut.events"
        # a batch that queues nothing (duplicates) wakes nobody
        assert await call(events.handler, batch, FakeContext()) == {"batchItemFailures": []}
        assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)


def test_envelopes() -> None:
    tenant = str(uuid.uuid4())
    incoming, source = from_sqs_body(json.dumps({"tenant_id": tenant, "topic": "a.b"}), "m-1")
    assert (incoming.topic, incoming.payload, incoming.event_id) == ("a.b", {}, "m-1")
    assert source == "sqs"
    routed, source = from_sqs_body(json.dumps(eventbridge({"tenant_id": tenant})), "m-3")
    assert (routed.topic, routed.event_id, source) == ("orders.created", "eb-1", "eventbridge")
    for body in ("[]", "null", json.dumps({"tenant_id": "nope", "topic": "a"})):
        with pytest.raises(BadEvent):
            from_sqs_body(body, "m-2")
    keyed = from_eventbridge(eventbridge({"tenant_id": tenant, "event_id": "mine"}))
    assert keyed.event_id == "mine"
    assert keyed.topic == "orders.created"
    with pytest.raises(BadEvent, match="detail"):
        from_eventbridge({"detail-type": "x", "detail": "text"})


async def test_database_down_returns_the_whole_batch(
    load_handler: HandlerLoader, lambda_env: pytest.MonkeyPatch
) -> None:
    lambda_env.setenv("ORDINAUT_DATABASE_URL", "postgresql://u:p@127.0.0.1:1/ordinaut")
    lambda_env.setenv("ORDINAUT_DB_CONNECT_TIMEOUT_S", "1")
    body = {"tenant_id": str(uuid.uuid4()), "topic": "a"}
    batch = {"Records": [sqs_record("m-1", body), sqs_record("m-2", body)]}
    events = await load_handler("events")
    result = await call(events.handler, batch, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]}
    assert events.container.pool is None
