"""The Lambda shape end to end, on this machine: moto for AWS (Secrets Manager, SQS,
EventBridge, in-process), the real embedded PostgreSQL and Redis, every handler cold-started
from the ARNs in its environment as Terraform configures it.

* the scheduler ticks, a wake-up lands on the worker queue, the worker drains it, the run
  succeeds;
* ``run_now`` through the API function (an API Gateway HTTP API v2 event) puts a wake-up on the
  queue, and the worker it wakes starts the run within 2 s of the request (database clock);
* an SQS batch on the ingest queue with good, duplicate and malformed events gets the right
  partial-batch response (malformed ones parked, not retried);
* an EventBridge event, routed by a rule to the ingest queue, reaches the events function and
  creates the run.

The secrets have exactly the JSON fields the deployment writes (infra/terraform/modules/data/
main.tf): the database's is RDS's managed master secret ``{"username", "password"}`` with the
endpoint in ``ORDINAUT_DATABASE_HOST`` / ``_PORT`` / ``_NAME`` / ``_SSLMODE`` (here the embedded
server's unix socket); Redis's ``{host, port, auth_token, tls, url}``; the tool-secrets key's
``{secrets_key}``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import boto3
import pytest
from fn_support import FakeContext, HandlerLoader, TaskFactory, call, db_now
from moto import mock_aws
from redis.asyncio import Redis

from ordinaut import cloud
from ordinaut.config import Settings, load_settings
from ordinaut.events import DEAD_STREAM
from ordinaut.secrets import new_key
from ordinaut.store import agents

pytestmark = pytest.mark.cloud

REGION = "eu-west-1"
ECHO = {"pipeline": [{"id": "hello", "uses": "echo", "with": {"msg": "${event.topic || 'none'}"}}]}


def database_secret(url: str) -> dict[str, Any]:
    """RDS's managed master secret (manage_master_user_password): the credential only. The
    embedded server trusts local connections, so the password is not checked here."""
    return {"username": urlsplit(url).username or "postgres", "password": "rotated-by-rds"}


def database_endpoint(url: str) -> dict[str, str]:
    """The environment Terraform gives every function for the endpoint (the RDS Proxy's)."""
    parts = urlsplit(url)
    return {
        "ORDINAUT_DATABASE_HOST": parse_qs(parts.query).get("host", [parts.hostname or ""])[0],
        "ORDINAUT_DATABASE_PORT": str(parts.port or 5432),
        "ORDINAUT_DATABASE_NAME": parts.path.lstrip("/") or "postgres",
        "ORDINAUT_DATABASE_SSLMODE": "disable",  # a unix socket; the proxy gets "require"
    }


def redis_secret(url: str) -> dict[str, Any]:
    """aws_secretsmanager_secret_version.redis: host, port, auth_token, tls, url."""
    return {"host": "localhost", "port": 6379, "auth_token": "", "tls": False, "url": url}


class Cloud:
    """The account: secrets, the work and ingest queues, an EventBridge rule to the latter."""

    def __init__(self, settings: Settings) -> None:
        secrets = boto3.client("secretsmanager", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.bus = boto3.client("events", region_name=REGION)
        self.arns = {
            cloud.DATABASE_SECRET_ENV: secrets.create_secret(
                Name="ordinaut-e2e/database",
                SecretString=json.dumps(database_secret(settings.database_url)),
            )["ARN"],
            cloud.REDIS_SECRET_ENV: secrets.create_secret(
                Name="ordinaut-e2e/redis",
                SecretString=json.dumps(redis_secret(settings.redis_url)),
            )["ARN"],
            cloud.SECRETS_KEY_ENV: secrets.create_secret(
                Name="ordinaut-e2e/secrets-key",
                SecretString=json.dumps({"secrets_key": new_key()}),
            )["ARN"],
        }
        self.work_url = self.sqs.create_queue(QueueName="ordinaut-e2e-work")["QueueUrl"]
        self.ingest_url = self.sqs.create_queue(QueueName="ordinaut-e2e-events")["QueueUrl"]
        self.ingest_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.ingest_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.bus.put_rule(Name="ordinaut-e2e-ingest", EventPattern=json.dumps({"source": ["shop"]}))
        self.bus.put_targets(
            Rule="ordinaut-e2e-ingest", Targets=[{"Id": "ingest", "Arn": self.ingest_arn}]
        )

    def receive(self, url: str) -> list[dict[str, Any]]:
        """Every visible message, deleted (as the Lambda poller does with a batch it hands
        over); returned as the records of an SQS event."""
        records = []
        while batch := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages"):
            for message in batch:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                records.append(sqs_record(message, url))
        return records


def sqs_record(message: dict[str, Any], url: str) -> dict[str, Any]:
    name = url.rsplit("/", 1)[-1]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{name}",
        "awsRegion": REGION,
    }


def http_event(method: str, path: str, token: str, body: Any = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0, $default stage) event."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "abc123.execute-api.eu-west-1.amazonaws.com",
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "e2e",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 1772452800000,
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def account(lambda_env: pytest.MonkeyPatch, settings: Settings) -> Iterator[Cloud]:
    """moto's account, and the environment Terraform gives every function: secret ARNs and the
    work queue, no plain credentials."""
    for name in ("ORDINAUT_DATABASE_URL", "ORDINAUT_REDIS_URL", "ORDINAUT_SECRETS_KEY"):
        lambda_env.delenv(name, raising=False)
    lambda_env.setenv("AWS_LAMBDA_FUNCTION_NAME", "ordinaut-e2e")
    lambda_env.setenv("ORDINAUT_DRAIN_MARGIN_S", "1")
    lambda_env.setenv("ORDINAUT_POLL_INTERVAL_S", "0.2")
    with mock_aws():
        account = Cloud(settings)
        for name, arn in account.arns.items():
            lambda_env.setenv(name, arn)
        for name, value in database_endpoint(settings.database_url).items():
            lambda_env.setenv(name, value)
        lambda_env.setenv(cloud.WORK_QUEUE_ENV, account.work_url)
        yield account


@pytest.fixture
async def publisher(pool: asyncpg.Pool, owner: uuid.UUID) -> str:
    """An access token of the task owner, who may also publish events."""
    now = await db_now(pool)
    await pool.execute(
        "UPDATE agents SET scopes = ARRAY['tasks:read','tasks:write','runs:read',"
        "'events:publish'] WHERE id = $1",
        owner,
    )
    async with pool.acquire() as conn:
        pair = await agents.issue_tokens(conn, owner, now, load_settings(os.environ))
    return pair.access_token


async def run_of(pool: asyncpg.Pool, task_id: uuid.UUID) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT id, status::text AS status, output, trigger, scheduled_for, started_at "
        "FROM runs WHERE task_id = $1",
        task_id,
    )


async def test_the_lambda_shape_end_to_end(
    account: Cloud,
    load_handler: HandlerLoader,
    make_task: TaskFactory,
    pool: asyncpg.Pool,
    owner: uuid.UUID,
    publisher: str,
    settings: Settings,
) -> None:
    # --- cold starts: every function reads its credentials from Secrets Manager -------------
    fetched: list[str] = []
    cloud.aws_client("secretsmanager").meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: fetched.append(params["SecretId"]),
    )
    migrate = await load_handler("migrate")
    scheduler = await load_handler("scheduler")
    worker = await load_handler("worker")
    api = await load_handler("api")
    events = await load_handler("events")
    assert sorted(set(fetched)) == sorted(account.arns.values())
    endpoint = database_endpoint(settings.database_url)
    for function in (migrate, scheduler, worker, api, events):
        url = function.container.settings.database_url
        assert url.startswith("postgresql://postgres:rotated-by-rds@/")
        assert f"host={endpoint['ORDINAUT_DATABASE_HOST']}" in url
        assert function.container.settings.redis_url == settings.redis_url
        assert function.container.settings.work_queue_url == account.work_url
    assert "ORDINAUT_DATABASE_URL" not in os.environ
    # what Terraform invokes after every deploy (the schema is current here)
    migrated = await call(migrate.handler, {"action": "migrate"}, FakeContext())
    assert migrated["applied"] == []
    assert migrated["action"] == "migrate"

    # --- the tick wakes a worker, which runs what fell due -----------------------------------
    now = await db_now(pool)
    due = await make_task(
        schedule_kind="once", schedule_expr=now.isoformat(), payload=ECHO, title="one-shot"
    )
    ticked = await call(scheduler.handler, {"source": "aws.scheduler"}, FakeContext())
    assert ticked["materialized"] == 1
    assert ticked["wakeups"] >= 1
    wakeups = account.receive(account.work_url)
    assert wakeups
    assert json.loads(wakeups[0]["body"])["source"] == "ordinaut.tick"
    drained = await call(worker.handler, {"Records": wakeups[:1]}, FakeContext(remaining_ms=10_000))
    assert drained["ran"] == 1
    run = await run_of(pool, due["id"])
    assert (run["status"], run["trigger"]) == ("succeeded", "schedule")

    # --- run_now through API Gateway: a wake-up, and the run starts within 2 s ---------------
    manual = await make_task(schedule_kind="cron", schedule_expr="0 0 1 1 *", payload=ECHO)
    response = await call(
        api.handler,
        http_event("POST", f"/tasks/{manual['id']}/run_now", publisher),
        FakeContext(function_name="ordinaut-e2e-api"),
    )
    assert response["statusCode"] == 202, response["body"]
    run_id = uuid.UUID(json.loads(response["body"])["run_id"])
    (wakeup,) = account.receive(account.work_url)
    assert json.loads(wakeup["body"])["source"] == "ordinaut.api"
    drained = await call(worker.handler, {"Records": [wakeup]}, FakeContext(remaining_ms=10_000))
    assert drained["ran"] == 1
    run = await pool.fetchrow(
        "SELECT status::text AS status, scheduled_for, started_at FROM runs WHERE id = $1", run_id
    )
    assert run["status"] == "succeeded"
    # scheduled_for is the instant of the request (the API's database clock)
    assert run["started_at"] - run["scheduled_for"] < timedelta(seconds=2)

    # --- an SQS batch on the ingest queue: good, duplicate, malformed ------------------------
    subscribed = await make_task(schedule_kind="event", schedule_expr="orders.*", payload=ECHO)
    good = {"tenant_id": str(owner), "topic": "orders.created", "event_id": "order-1"}
    for body in (
        json.dumps(good),
        json.dumps(good),  # a producer's retry: the same event id
        "{not json",
        json.dumps({**good, "tenant_id": str(uuid.uuid4()), "event_id": "order-2"}),
    ):
        account.sqs.send_message(QueueUrl=account.ingest_url, MessageBody=body)
    batch = account.receive(account.ingest_url)
    assert len(batch) == 4
    result = await call(events.handler, {"Records": batch}, FakeContext())
    # the duplicate is accepted once, the malformed and the stranger are parked: none retried
    assert result == {"batchItemFailures": []}
    assert await pool.fetchval("SELECT count(*) FROM events WHERE event_id = 'order-1'") == 1
    runs = await pool.fetch(
        "SELECT event_id FROM runs WHERE task_id = $1 AND trigger = 'event'", subscribed["id"]
    )
    assert [r["event_id"] for r in runs] == ["order-1"]
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        parked = {f["message_id"]: f["error"] for _, f in await redis.xrange(DEAD_STREAM)}
    finally:
        await redis.aclose()
    assert parked[batch[2]["messageId"]] == "the body is not JSON"
    assert parked[batch[3]["messageId"]].startswith("unknown tenant")
    (wakeup,) = account.receive(account.work_url)  # one per batch that queued runs
    assert json.loads(wakeup["body"])["source"] == "ordinaut.events"
    drained = await call(worker.handler, {"Records": [wakeup]}, FakeContext(remaining_ms=10_000))
    assert drained["ran"] == 1

    # --- EventBridge -> rule -> ingest queue -> events function -> a run ---------------------
    put = account.bus.put_events(
        Entries=[
            {
                "Source": "shop",
                "DetailType": "orders.shipped",
                "Detail": json.dumps({"tenant_id": str(owner), "order": 9}),
            }
        ]
    )
    assert put["FailedEntryCount"] == 0
    (routed,) = account.receive(account.ingest_url)
    envelope = json.loads(routed["body"])
    assert envelope["detail-type"] == "orders.shipped"
    assert await call(events.handler, {"Records": [routed]}, FakeContext()) == {
        "batchItemFailures": []
    }
    stored = await pool.fetchrow(
        "SELECT event_id, source, payload FROM events WHERE topic = 'orders.shipped'"
    )
    assert stored["source"] == "eventbridge"
    assert stored["event_id"] == envelope["id"]
    assert stored["payload"] == {"tenant_id": str(owner), "order": 9}
    (wakeup,) = account.receive(account.work_url)
    drained = await call(worker.handler, {"Records": [wakeup]}, FakeContext(remaining_ms=10_000))
    assert drained["ran"] == 1
    shipped = await pool.fetchrow(
        "SELECT status::text AS status, output FROM runs WHERE event_id = $1", envelope["id"]
    )
    assert shipped["status"] == "succeeded"
    assert shipped["output"] == {"msg": "orders.shipped"}
