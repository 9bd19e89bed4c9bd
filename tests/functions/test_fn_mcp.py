"""The hosted MCP endpoint through the API Lambda: API Gateway HTTP API (payload 2.0) events
through Mangum with the lifespan off, one JSON answer per invocation, nothing kept between
invocations but the app's pool."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import asyncpg
import pytest
from fn_support import FakeContext, HandlerLoader, call, db_now
from samples import CRON_TASK
from test_fn_api import http_event

from ordinaut.config import load_settings
from ordinaut.store import agents

pytestmark = pytest.mark.cloud


def mcp_event(token: str | None, method: str, params: dict[str, Any]) -> dict[str, Any]:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2025-11-25",
    }
    if token:
        headers["authorization"] = f"Bearer {token}"
    event = http_event("POST", "/mcp", headers=headers)
    event["body"] = json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    return event


def answer(response: dict[str, Any]) -> Any:
    raw = response["body"]
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


async def test_mcp_tool_calls_through_mangum(
    load_handler: HandlerLoader, pool: asyncpg.Pool
) -> None:
    now = await db_now(pool)
    async with pool.acquire() as conn:
        agent, _ = await agents.create_agent(
            conn, name="assistant", scopes=["tasks:read", "tasks:write"], now=now
        )
        token = (
            await agents.issue_tokens(conn, agent.id, now, load_settings(os.environ))
        ).access_token
    api = await load_handler("api")

    refused = await call(api.handler, mcp_event(None, "tools/list", {}), FakeContext())
    assert refused["statusCode"] == 401
    assert answer(refused)["error"]["code"] == "unauthorized"

    created = await call(
        api.handler,
        mcp_event(token, "tools/call", {"name": "create_task", "arguments": CRON_TASK}),
        FakeContext(),
    )
    assert created["statusCode"] == 200, created["body"]
    assert created["headers"]["content-type"].startswith("application/json")
    assert "mcp-session-id" not in created["headers"]
    result = answer(created)
    assert result["id"] == 7
    assert result["result"]["isError"] is False, result
    task = result["result"]["structuredContent"]
    assert task["title"] == "Morning briefing"
    assert task["next_fire_times"]

    # a second (warm) invocation, as if another container or instance answered it
    listed = await call(
        api.handler,
        mcp_event(token, "tools/call", {"name": "list_tasks", "arguments": {}}),
        FakeContext(),
    )
    page = answer(listed)["result"]["structuredContent"]
    assert [t["id"] for t in page["items"]] == [task["id"]]
