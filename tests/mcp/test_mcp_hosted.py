"""The hosted ``/mcp`` endpoint, driven by the official SDK's Streamable HTTP client against the
app served by uvicorn on a loopback port (lifespan off, as under Mangum on Lambda)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from samples import CRON_TASK

Worker = Callable[[], Awaitable[int]]
AgentFactory = Callable[..., Awaitable[dict[str, Any]]]
USER_SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]

EVERY_TOOL = {
    "create_task",
    "update_task",
    "delete_task",
    "pause_task",
    "resume_task",
    "cancel_task",
    "snooze_task",
    "run_task_now",
    "preview_schedule",
    "preview_task",
    "validate_task",
    "list_tasks",
    "get_task",
    "list_runs",
    "get_run",
    "retry_run",
    "cancel_run",
    "list_dead_letters",
    "publish_event",
    "list_pipeline_tools",
}


def ok(result: CallToolResult) -> dict[str, Any]:
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    assert not result.is_error, text
    assert isinstance(result.structured_content, dict)
    assert json.loads(text) == result.structured_content  # the same answer, as text
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return result.content[0].text  # type: ignore[union-attr]


@asynccontextmanager
async def hosted(url: str, token: str | None, **kwargs: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), **kwargs) as mcp,
    ):
        yield mcp


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_end_to_end_over_http(
    live_url: str, agent: dict[str, Any], run_worker: Worker, mode: str
) -> None:
    async with hosted(live_url, agent["token"], mode=mode) as mcp:
        listed = {t.name: t for t in (await mcp.list_tools()).tools}
        assert EVERY_TOOL <= set(listed)
        created = ok(await mcp.call_tool("create_task", CRON_TASK))
        task_id = created["id"]
        assert created["status"] == "active"
        assert created["summary"].startswith("every weekday at 08:00 Europe/Chisinau, next: Tue")
        assert created["next_fire_times"][0] == "2026-03-03T06:00:00Z"

        page = ok(await mcp.call_tool("list_tasks", {"status": "active"}))
        assert [t["id"] for t in page["items"]] == [task_id]

        queued = ok(await mcp.call_tool("run_task_now", {"task_id": task_id}))
        assert queued["task_id"] == task_id
        assert await run_worker() == 1
        run = ok(await mcp.call_tool("get_run", {"run_id": queued["run_id"]}))
        assert run["status"] == "succeeded"
        assert run["step_results"][0]["output"] == {"text": "weather in Chisinau"}
