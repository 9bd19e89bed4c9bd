"""The MCP server driven by the SDK's own client: in-process against the API (ASGI), and over
stdio as `python -m ordinaut.cli mcp` against a real `ordinaut api` process."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult
from samples import CRON_TASK

from ordinaut.assistant_mcp import build_server
from ordinaut.client import AsyncOrdinaut, NotFoundError
from ordinaut.client import credentials as store

Worker = Callable[[], Awaitable[int]]

TOOLS = {
    "create_task",
    "preview_schedule",
    "list_tasks",
    "get_task",
    "pause_task",
    "resume_task",
    "cancel_task",
    "run_task_now",
    "list_runs",
    "get_run",
    "publish_event",
    "list_pipeline_tools",
}
BRIEFING = {
    "title": "Morning briefing",
    "schedule_kind": "cron",
    "schedule_expr": "0 8 * * 1-5",
    "timezone": "Europe/Chisinau",
    "params": {"city": "Chisinau"},
    "pipeline": [{"id": "say", "uses": "echo", "with": {"text": "weather in ${params.city}"}}],
}


def ok(result: CallToolResult) -> dict[str, Any]:
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    assert not result.is_error, text
    assert result.structured_content is not None
    assert json.loads(text) == result.structured_content  # the same answer, as text
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return result.content[0].text  # type: ignore[union-attr]


async def test_every_tool_in_process(sdk: AsyncOrdinaut, run_worker: Worker) -> None:
    async with Client(build_server(sdk)) as mcp:
        listed = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(listed) == TOOLS
        for tool in listed.values():  # written for a model: short, with an example
            assert tool.description and "Example" in tool.description, tool.name
            assert len(tool.description) < 600, tool.name
        assert listed["get_task"].annotations and listed["get_task"].annotations.read_only_hint

        preview = ok(
            await mcp.call_tool(
                "preview_schedule",
                {
                    "schedule_kind": "cron",
                    "schedule_expr": "0 8 * * 1-5",
                    "timezone": "Europe/Chisinau",
                    "count": 2,
                },
            )
        )
        assert preview["summary"] == (
            "every weekday at 08:00 Europe/Chisinau, next: "
            "Tue 2026-03-03 08:00 EET, Wed 2026-03-04 08:00 EET"
        )
        assert preview["fire_times_utc"] == ["2026-03-03T06:00:00Z", "2026-03-04T06:00:00Z"]

        tools = ok(await mcp.call_tool("list_pipeline_tools", {}))["tools"]
        echo = next(t for t in tools if t["name"] == "echo")
        assert echo["input_schema"]["type"] == "object" and "output_schema" in echo

        created = ok(await mcp.call_tool("create_task", BRIEFING))
        task_id = created["task_id"]
        assert created["status"] == "active"
        assert created["summary"].startswith("every weekday at 08:00 Europe/Chisinau, next: Tue")
        assert created["next_fire_times"][0] == "2026-03-03T06:00:00Z"

        listed_tasks = ok(await mcp.call_tool("list_tasks", {"status": "active"}))
        assert listed_tasks["total"] == 1 and listed_tasks["tasks"][0]["task_id"] == task_id

        assert ok(await mcp.call_tool("pause_task", {"task_id": task_id}))["status"] == "paused"
        conflict = error_text(await mcp.call_tool("pause_task", {"task_id": task_id}))
        assert (
            "cannot pause a task that is paused" in conflict and "allowed from: active" in conflict
        )
        assert ok(await mcp.call_tool("resume_task", {"task_id": task_id}))["status"] == "active"

        queued = ok(await mcp.call_tool("run_task_now", {"task_id": task_id}))
        assert queued["status"] == "queued" and "get_run" in queued["next"]
        assert await run_worker() == 1
        run = ok(await mcp.call_tool("get_run", {"run_id": queued["run_id"]}))
        assert run["status"] == "succeeded"
        assert run["steps"][0]["id"] == "say" and run["steps"][0]["status"] == "succeeded"
        assert run["steps"][0]["output"] == {"text": "weather in Chisinau"}

        runs = ok(await mcp.call_tool("list_runs", {"task_id": task_id}))
        assert [r["run_id"] for r in runs["runs"]] == [queued["run_id"]]
        task = ok(await mcp.call_tool("get_task", {"task_id": task_id}))
        assert task["recent_runs"][0]["status"] == "succeeded"
        assert len(task["next_fire_times"]) == 5 and task["payload"]["params"] == {
            "city": "Chisinau"
        }

        event = ok(
            await mcp.call_tool("publish_event", {"topic": "orders.created", "payload": {"id": 1}})
        )
        assert event["topic"] == "orders.created" and event["event_id"]

        assert ok(await mcp.call_tool("cancel_task", {"task_id": task_id}))["status"] == "canceled"
        missing = error_text(await mcp.call_tool("get_task", {"task_id": "nope"}))
        assert "- task_id: Input should be a valid UUID" in missing
        gone = error_text(
            await mcp.call_tool("get_run", {"run_id": "00000000-0000-0000-0000-000000000000"})
        )
        assert "Not found: run " in gone and "list_runs" in gone


async def test_validation_errors_come_back_naming_the_argument(sdk: AsyncOrdinaut) -> None:
    async with Client(build_server(sdk)) as mcp:
        bad_cron = error_text(
            await mcp.call_tool("create_task", {**BRIEFING, "schedule_expr": "0 8 * * 9"})
        )
        assert "Rejected (invalid_schedule)" in bad_cron
        assert "\n- schedule_expr: " in bad_cron and "preview_schedule" in bad_cron

        bad_tool = error_text(
            await mcp.call_tool(
                "create_task", {**BRIEFING, "pipeline": [{"id": "a", "uses": "no.such.tool"}]}
            )
        )
        assert "\n- pipeline[0].uses: " in bad_tool or "\n- pipeline.0.uses: " in bad_tool
        assert "list_pipeline_tools" in bad_tool

        bad_zone = error_text(
            await mcp.call_tool(
                "preview_schedule",
                {"schedule_kind": "cron", "schedule_expr": "0 8 * * *", "timezone": "Mars/Olympus"},
            )
        )
        assert "- timezone: " in bad_zone and "IANA" in bad_zone

        # Arguments the schema forbids never reach the API.
        wrong_kind = await mcp.call_tool("create_task", {**BRIEFING, "schedule_kind": "hourly"})
        assert wrong_kind.is_error and "schedule_kind" in error_text(wrong_kind)
        assert (await sdk.list_tasks()).total == 0


@pytest.mark.e2e
async def test_client_and_stdio_server_against_a_real_api(
    api: dict[str, Any], tmp_path: Path
) -> None:
    # The async client against the real process: an agent of its own, tokens by exchange.
    admin_token = api["headers"]["Authorization"].removeprefix("Bearer ")
    async with AsyncOrdinaut(api["base"], token=admin_token) as root:
        bot = await root.create_agent("assistant", ["tasks:read", "tasks:write", "runs:read"])
    async with AsyncOrdinaut(api["base"], agent_id=bot.id, agent_secret=bot.agent_secret) as c:
        task = await c.create_task({**CRON_TASK, "title": "direct"}, idempotency_key="e2e-1")
        again = await c.create_task({**CRON_TASK, "title": "direct"}, idempotency_key="e2e-1")
        assert again.id == task.id
        queued = await c.run_task_now(task.id)
        run = await c.get_run(queued.run_id)  # no worker here: it waits in the queue
        assert (run.status, run.trigger) == ("queued", "run_now")
        with pytest.raises(NotFoundError) as caught:
            await c.get_task("00000000-0000-0000-0000-000000000000")
        assert caught.value.request_id
        tokens = await c.exchange_token(bot.id, bot.agent_secret)

    # `ordinaut mcp` over stdio, configured only by the login saved for that server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDINAUT_")}
    env["ORDINAUT_HOME"] = str(tmp_path)
    store.save_login(
        env, api["base"], token=tokens.access_token, agent_id=bot.id, agent_secret=bot.agent_secret
    )
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "ordinaut.cli", "mcp"], env=env
    )
    async with Client(params) as mcp:
        assert {t.name for t in (await mcp.list_tools()).tools} == TOOLS
        created = ok(await mcp.call_tool("create_task", BRIEFING))
        shown = ok(await mcp.call_tool("get_task", {"task_id": created["task_id"]}))
        assert shown["title"] == "Morning briefing" and len(shown["next_fire_times"]) == 5
        listed = ok(await mcp.call_tool("list_tasks", {}))
        assert {t["title"] for t in listed["tasks"]} == {"direct", "Morning briefing"}
        rejected = error_text(
            await mcp.call_tool("create_task", {**BRIEFING, "timezone": "Nowhere/City"})
        )
        assert "- timezone: unknown time zone 'Nowhere/City'" in rejected
