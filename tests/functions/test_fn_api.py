"""The API Lambda: API Gateway HTTP API (payload 2.0, $default stage) events through Mangum."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import asyncpg
import pytest
from fn_support import FakeContext, HandlerLoader, call, db_now
from moto import mock_aws

from ordinaut.config import load_settings
from ordinaut.store import agents, outbox

pytestmark = pytest.mark.cloud


def http_event(method: str, path: str, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API v2 event as the $default stage and route deliver it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc123.execute-api.eu-west-1.amazonaws.com", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "02/Mar/2026:12:00:00 +0000",
            "timeEpoch": 1772452800000,
        },
        "isBase64Encoded": False,
    }


def body(response: dict[str, Any]) -> Any:
    raw = response["body"]
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


async def test_live_on_the_default_stage(load_handler: HandlerLoader) -> None:
    api = await load_handler("api")
    response = await call(api.handler, http_event("GET", "/health/live"), FakeContext())
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("application/json")
    assert response["headers"]["x-request-id"]


async def test_unknown_path_is_a_json_404(load_handler: HandlerLoader) -> None:
    api = await load_handler("api")
    response = await call(api.handler, http_event("GET", "/no/such/thing"), FakeContext())
    assert response["statusCode"] == 404
    doc = body(response)
    assert doc["error"]["code"] == "not_found"
    assert doc["request_id"] == response["headers"]["x-request-id"]


async def test_unauthenticated_request_is_a_json_401(load_handler: HandlerLoader) -> None:
    api = await load_handler("api")
    response = await call(api.handler, http_event("GET", "/tasks"), FakeContext())
    assert response["statusCode"] == 401
    assert body(response)["error"]["code"] == "unauthorized"


async def test_warm_invocations_reuse_one_pool(
    load_handler: HandlerLoader, pool: asyncpg.Pool
) -> None:
    api = await load_handler("api")
    deps = api.app.state.deps
    first = await call(api.handler, http_event("GET", "/health/ready"), FakeContext())
    assert first["statusCode"] == 200, first["body"]
    created = deps._pool
    assert created is not None
    second = await call(api.handler, http_event("GET", "/health/ready"), FakeContext())
    assert second["statusCode"] == 200
    assert deps._pool is created
    assert not created.is_closing()


async def test_lambda_access_log_is_one_json_line_with_both_request_ids(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lambda_env.setenv("AWS_LAMBDA_FUNCTION_NAME", "ordinaut-test-api")
    api = await load_handler("api")
    context = FakeContext()
    event = http_event("GET", "/health/live", headers={"x-request-id": "client-rid-1"})
    response = await call(api.handler, event, context)
    assert response["statusCode"] == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (access,) = [line for line in lines if line.get("status") == 200]
    assert access["message"] == "GET /health/live 200"
    assert access["function_request_id"] == context.aws_request_id
    assert access["request_id"] == "client-rid-1"  # the API's own id, as X-Request-ID says


async def test_event_stream_is_bounded_and_resumes_with_last_event_id(
    load_handler: HandlerLoader, lambda_env: pytest.MonkeyPatch, pool: asyncpg.Pool
) -> None:
    """GET /events/stream through API Gateway: the Lambda buffers the response, so the stream
    must end by itself (ORDINAUT_SSE_MAX_SECONDS, below API Gateway's 29 s), and the client
    reconnects with Last-Event-ID to get what came after."""
    lambda_env.setenv("ORDINAUT_SSE_MAX_SECONDS", "1")
    lambda_env.setenv("ORDINAUT_SSE_POLL_S", "0.2")
    lambda_env.setenv("ORDINAUT_SSE_SETTLE_S", "0")
    now = await db_now(pool)
    settings = load_settings(os.environ)
    async with pool.acquire() as conn:
        agent, _ = await agents.create_agent(conn, name="reader", scopes=["tasks:read"], now=now)
        token = (await agents.issue_tokens(conn, agent.id, now, settings)).access_token
        async with conn.transaction():
            await outbox.append(
                conn,
                [outbox.OutboxEvent("run.succeeded", agent.id, None, {"n": n}) for n in range(3)],
                now=now,
            )
    seqs = [
        r["seq"]
        for r in await pool.fetch(
            "SELECT seq FROM outbox WHERE tenant_id = $1 ORDER BY seq", agent.id
        )
    ]
    api = await load_handler("api")
    headers = {"authorization": f"Bearer {token}", "last-event-id": str(seqs[0])}
    response = await call(
        api.handler, http_event("GET", "/events/stream", headers=headers), FakeContext()
    )
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    raw = response["body"]
    text = base64.b64decode(raw).decode() if response.get("isBase64Encoded") else raw
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert ids == seqs[1:]  # resumed right after the Last-Event-ID
    assert text.rstrip().endswith('data: {"reason": "sse_max_seconds"}')
    # the next reconnect, from the last id seen, gets nothing again
    headers["last-event-id"] = str(ids[-1])
    again = await call(
        api.handler, http_event("GET", "/events/stream", headers=headers), FakeContext()
    )
    raw = again["body"]
    text = base64.b64decode(raw).decode() if again.get("isBase64Encoded") else raw
    assert [line for line in text.splitlines() if line.startswith("id: ")] == []


async def test_a_refused_wakeup_is_an_emf_metric_not_a_failed_request(
    load_handler: HandlerLoader,
    lambda_env: pytest.MonkeyPatch,
    pool: asyncpg.Pool,
    make_task: Any,
    owner: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = await make_task(schedule_kind="cron", schedule_expr="0 0 1 1 *")
    now = await db_now(pool)
    async with pool.acquire() as conn:
        token = (
            await agents.issue_tokens(conn, owner, now, load_settings(os.environ))
        ).access_token
    with mock_aws():  # the queue does not exist: SQS refuses the message
        lambda_env.setenv(
            "ORDINAUT_WORK_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/gone"
        )
        api = await load_handler("api")
        event = http_event(
            "POST", f"/tasks/{task['id']}/run_now", headers={"authorization": f"Bearer {token}"}
        )
        response = await call(api.handler, event, FakeContext())
    assert response["statusCode"] == 202
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [doc["WakeupsFailed"] for doc in emf] == [[1.0]]
    assert emf[0]["service"] == "ordinaut-test"
