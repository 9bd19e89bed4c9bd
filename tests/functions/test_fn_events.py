"""The events Lambda: SQS batches with partial failures, EventBridge events, one ingest path."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from conftest import HandlerLoader, TaskFactory
from fn_support import FakeContext, call

from functions.events.invocation import BadEvent, from_eventbridge, from_sqs_body

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


async def test_sqs_batch_reports_only_the_bad_records(
    load_handler: HandlerLoader,
    make_task: TaskFactory,
    owner: uuid.UUID,
    pool: asyncpg.Pool,
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
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": "m-not-json"},
            {"itemIdentifier": "m-stranger"},
            {"itemIdentifier": "m-bad-topic"},
            {"itemIdentifier": "m-extra"},
        ]
    }
    stored = await pool.fetch("SELECT event_id, source FROM events ORDER BY seq")
    assert [(r["event_id"], r["source"]) for r in stored] == [
        ("m-good", "sqs"),  # no event_id: the SQS message id makes redelivery idempotent
        ("order-42", "sqs"),
    ]
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE task_id = $1", task["id"]) == 2

    # SQS redelivers the whole batch (say the function timed out): nothing runs twice
    again = await call(events.handler, batch, FakeContext())
    assert len(again["batchItemFailures"]) == 4
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
        "tasks_matched": 1,
    }
    retried = await call(events.handler, event, FakeContext())
    assert retried["duplicate"] is True and retried["runs_queued"] == 0
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


def test_envelopes() -> None:
    tenant = str(uuid.uuid4())
    incoming = from_sqs_body(json.dumps({"tenant_id": tenant, "topic": "a.b"}), "m-1")
    assert (incoming.topic, incoming.payload, incoming.event_id) == ("a.b", {}, "m-1")
    for body in ("[]", "null", json.dumps({"tenant_id": "nope", "topic": "a"})):
        with pytest.raises(BadEvent):
            from_sqs_body(body, "m-2")
    keyed = from_eventbridge(eventbridge({"tenant_id": tenant, "event_id": "mine"}))
    assert keyed.event_id == "mine" and keyed.topic == "orders.created"
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
