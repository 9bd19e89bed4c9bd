"""The MCP tools (ordinaut.mcp) driven by the SDK's own client: in process against the API
(ASGI, as `ordinaut mcp` does over HTTP), and over stdio as `python -m ordinaut.cli mcp`
against a real `ordinaut api` process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from samples import CRON_TASK, FAILING_PAYLOAD
from support import free_port

from ordinaut.client import AsyncOrdinaut, NotFoundError
from ordinaut.client import credentials as store
from ordinaut.mcp.server import build_server, openapi_catalog
from ordinaut.mcp.tools import TOOLS

Worker = Callable[[], Awaitable[int]]

BRIEFING = CRON_TASK


def ok(result: CallToolResult) -> dict[str, Any]:
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    assert not result.is_error, text
    assert isinstance(result.structured_content, dict)
    assert json.loads(text) == result.structured_content  # the same answer, as text
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return result.content[0].text  # type: ignore[union-attr]


def server(sdk: AsyncOrdinaut) -> Client:
    return Client(build_server(sdk, openapi_catalog(sdk)))


async def test_tools_are_described_for_a_model(sdk: AsyncOrdinaut) -> None:
    async with server(sdk) as mcp:
        listed = {t.name: t for t in (await mcp.list_tools()).tools}
    assert set(listed) == {t.name for t in TOOLS}
    for tool in listed.values():  # written for a model: short, with an example
        assert (
            tool.description and "Example" in tool.description or "e.g." in (tool.description or "")
        ), tool.name
        assert len(tool.description or "") < 900, tool.name
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
    assert listed["get_task"].annotations
    assert listed["get_task"].annotations.read_only_hint
    assert listed["delete_task"].annotations
    assert listed["delete_task"].annotations.destructive_hint
    create = listed["create_task"].input_schema
    assert set(create["required"]) == {"title", "schedule_kind", "schedule_expr", "payload"}
    assert create["properties"]["payload"]["$ref"] == "#/$defs/Payload"
    assert "pipeline" in create["$defs"]["Payload"]["properties"]
    dead = listed["list_dead_letters"].input_schema["properties"]
    assert "status" not in dead
    assert "task_id" in dead


async def test_every_tool_in_process(sdk: AsyncOrdinaut, run_worker: Worker) -> None:
    async with server(sdk) as mcp:
        preview = ok(
            await mcp.call_tool(
                "preview_schedule",
                {
                    "schedule_kind": "cron",
                    "schedule_expr": "0 8 * * 1-5",
                    "timezone": "Europe/Chisinau",
                    "limit": 2,
                },
            )
        )
        assert preview["summary"] == (
            "every weekday at 08:00 Europe/Chisinau, next: "
            "Tue 2026-03-03 08:00 EET, Wed 2026-03-04 08:00 EET"
        )
        assert preview["fire_times"] == ["2026-03-03T06:00:00Z", "2026-03-04T06:00:00Z"]
        assert preview["fire_times_local"][0].startswith("Tue 2026-03-03 08:00")

        functions = ok(await mcp.call_tool("list_expression_functions", {}))["functions"]
        length = next(f for f in functions if f["name"] == "length")
        assert length["signature"].startswith("length(")
        assert length["example"]
        assert "format_time" in {f["name"] for f in functions}

        tools = ok(await mcp.call_tool("list_pipeline_tools", {}))["items"]
        echo = next(t for t in tools if t["name"] == "echo")
        assert echo["input_schema"]["type"] == "object"
        assert "output_schema" in echo

        checked = ok(
            await mcp.call_tool(
                "validate_task",
                {"task": BRIEFING, "dry_run": True, "sample_params": {"city": "Balti"}},
            )
        )
        assert checked["valid"] is True
        assert checked["next_run_at"] == "2026-03-03T06:00:00Z"
        assert checked["steps"][0]["input"] == {"text": "weather in Balti"}

        created = ok(await mcp.call_tool("create_task", BRIEFING))
        task_id = created["id"]
        assert created["status"] == "active"
        assert created["title"] == "Morning briefing"
        assert created["summary"].startswith("every weekday at 08:00 Europe/Chisinau, next: Tue")
        assert created["next_fire_times"][0] == "2026-03-03T06:00:00Z"

        # partial update: only what is given changes
        updated = ok(
            await mcp.call_tool(
                "update_task", {"task_id": task_id, "schedule_expr": "30 9 * * 1-5"}
            )
        )
        assert updated["title"] == "Morning briefing"
        assert updated["timezone"] == "Europe/Chisinau"
        assert updated["schedule_expr"] == "30 9 * * 1-5"
        assert updated["next_fire_times"][0] == "2026-03-03T07:30:00Z"
        assert updated["payload"]["params"] == {"city": "Chisinau"}

        listed = ok(await mcp.call_tool("list_tasks", {"status": "active", "limit": 5}))
        assert listed["total"] == 1
        assert listed["items"][0]["id"] == task_id

        snoozed = ok(
            await mcp.call_tool(
                "snooze_task", {"task_id": task_id, "delay_seconds": 3600, "reason": "busy"}
            )
        )
        assert snoozed["snoozed_until"] == "2026-03-02T13:00:00Z"

        assert ok(await mcp.call_tool("pause_task", {"task_id": task_id}))["status"] == "paused"
        conflict = error_text(await mcp.call_tool("pause_task", {"task_id": task_id}))
        assert "Not possible now: cannot pause a task that is paused" in conflict
        assert "allowed from: active" in conflict
        paused = ok(await mcp.call_tool("preview_task", {"task_id": task_id, "limit": 1}))
        assert paused["fire_times"] == ["2026-03-03T07:30:00Z"]  # once resumed
        shown = ok(await mcp.call_tool("get_task", {"task_id": task_id}))
        assert shown["summary"].endswith("(paused: these are the times once resumed)")
        assert ok(await mcp.call_tool("resume_task", {"task_id": task_id}))["status"] == "active"

        queued = ok(await mcp.call_tool("run_task_now", {"task_id": task_id}))
        assert queued["task_id"] == task_id
        assert await run_worker() == 1
        run = ok(await mcp.call_tool("get_run", {"run_id": queued["run_id"]}))
        assert run["status"] == "succeeded"
        step = run["step_results"][0]
        assert (step["id"], step["status"]) == ("say", "succeeded")
        assert step["output"] == {"text": "weather in Chisinau"}
        runs = ok(await mcp.call_tool("list_runs", {"task_id": task_id}))
        assert [r["id"] for r in runs["items"]] == [queued["run_id"]]
        task = ok(await mcp.call_tool("get_task", {"task_id": task_id}))
        assert [r["status"] for r in task["recent_runs"]] == ["succeeded"]
        assert len(task["next_fire_times"]) == 5
        assert task["summary"].startswith("every weekday")

        # a run that fails with no retries left is a dead letter; retry it, then cancel it
        failing = ok(
            await mcp.call_tool(
                "create_task",
                {**BRIEFING, "title": "fragile", "payload": FAILING_PAYLOAD, "max_retries": 0},
            )
        )
        bad = ok(await mcp.call_tool("run_task_now", {"task_id": failing["id"]}))
        assert await run_worker() == 1
        dead = ok(await mcp.call_tool("list_dead_letters", {}))
        assert [r["id"] for r in dead["items"]] == [bad["run_id"]]
        assert ok(await mcp.call_tool("list_dead_letters", {"task_id": task_id}))["total"] == 0
        retried = ok(await mcp.call_tool("retry_run", {"run_id": bad["run_id"]}))
        assert (retried["status"], retried["attempt"]) == ("queued", 2)
        refused = error_text(await mcp.call_tool("retry_run", {"run_id": queued["run_id"]}))
        assert refused.startswith("Not possible now:")
        canceled = ok(await mcp.call_tool("cancel_run", {"run_id": bad["run_id"]}))
        assert canceled["status"] == "canceled"

        event = ok(
            await mcp.call_tool(
                "publish_event",
                {"topic": "orders.created", "payload": {"id": 1}, "event_id": "order-1"},
            )
        )
        assert event["topic"] == "orders.created"
        assert event["event_id"] == "order-1"

        assert ok(await mcp.call_tool("cancel_task", {"task_id": task_id}))["status"] == "canceled"
        deleted = ok(await mcp.call_tool("delete_task", {"task_id": task_id}))
        assert deleted == {"deleted": True, "task_id": task_id}
        gone = error_text(await mcp.call_tool("get_task", {"task_id": task_id}))
        assert gone.startswith("Not found: task ")
        assert "list_tasks" in gone
        missing = error_text(await mcp.call_tool("get_task", {"task_id": "nope"}))
        assert "- task_id: Input should be a valid UUID" in missing
    with pytest.raises(NotFoundError):
        await sdk.get_task(task_id)


async def test_validation_errors_come_back_naming_the_argument(sdk: AsyncOrdinaut) -> None:
    async with server(sdk) as mcp:
        bad_cron = error_text(
            await mcp.call_tool("create_task", {**BRIEFING, "schedule_expr": "0 8 * * 9"})
        )
        assert bad_cron.startswith("Rejected (invalid_schedule)")
        assert "\n- schedule_expr: " in bad_cron
        assert "preview_schedule" in bad_cron

        bad_tool = error_text(
            await mcp.call_tool(
                "create_task",
                {**BRIEFING, "payload": {"pipeline": [{"id": "a", "uses": "no.such.tool"}]}},
            )
        )
        assert "\n- payload.pipeline[0].uses: " in bad_tool, bad_tool
        assert "list_pipeline_tools" in bad_tool

        bad_zone = error_text(
            await mcp.call_tool(
                "preview_schedule",
                {"schedule_kind": "cron", "schedule_expr": "0 8 * * *", "timezone": "Mars/Olympus"},
            )
        )
        assert "- timezone: " in bad_zone
        assert "IANA" in bad_zone

        # the API's own validation of the request schema: the enum names the field
        wrong_kind = error_text(
            await mcp.call_tool("create_task", {**BRIEFING, "schedule_kind": "hourly"})
        )
        assert "- schedule_kind: " in wrong_kind
        # arguments the request has no place for never reach the API
        unknown = error_text(await mcp.call_tool("create_task", {**BRIEFING, "colour": "red"}))
        assert "unknown argument colour" in unknown
        assert "schedule_expr" in unknown
        no_id = error_text(await mcp.call_tool("pause_task", {}))
        assert "missing argument task_id" in no_id
        # an id is one path segment: it cannot reach another route (GET /runs here)
        smuggled = error_text(await mcp.call_tool("get_task", {"task_id": "../runs"}))
        assert smuggled.startswith("Not found: no such route")
        dots = error_text(await mcp.call_tool("pause_task", {"task_id": ".."}))
        assert "task_id must be an id, not '..'" in dots
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
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert {"create_task", "update_task", "list_dead_letters", "get_run"} <= names
        created = ok(await mcp.call_tool("create_task", {**BRIEFING, "title": "by stdio"}))
        shown = ok(await mcp.call_tool("get_task", {"task_id": created["id"]}))
        assert shown["title"] == "by stdio"
        assert len(shown["next_fire_times"]) == 5
        listed = ok(await mcp.call_tool("list_tasks", {}))
        assert {t["title"] for t in listed["items"]} == {"direct", "by stdio"}
        rejected = error_text(
            await mcp.call_tool("create_task", {**BRIEFING, "timezone": "Nowhere/City"})
        )
        assert "- timezone: unknown time zone 'Nowhere/City'" in rejected


async def test_ordinaut_mcp_over_local_http(
    live_url: str, agent: dict[str, Any], sdk: AsyncOrdinaut, tmp_path: Path
) -> None:
    """`ordinaut mcp --transport http`: the same tools on a loopback port, with the one
    credential it was started with."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDINAUT_")}
    env.update(ORDINAUT_HOME=str(tmp_path), ORDINAUT_URL=live_url, ORDINAUT_TOKEN=agent["token"])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ordinaut.cli",
        "mcp",
        "--transport",
        "http",
        "--port",
        str(port),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        for _ in range(300):  # until it listens (bounded attempts, no clock)
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                await asyncio.sleep(0.1)
            else:
                writer.close()
                break
        async with Client(url) as mcp:
            assert "update_task" in {t.name for t in (await mcp.list_tools()).tools}
            created = ok(await mcp.call_tool("create_task", {**BRIEFING, "title": "local"}))
        assert (await sdk.get_task(created["id"])).title == "local"
    finally:
        process.terminate()
        await process.wait()


async def test_an_unreachable_api_is_said_plainly() -> None:
    port = free_port()  # nothing listens there
    down = AsyncOrdinaut(f"http://127.0.0.1:{port}", token="t", max_retries=0)
    async with down, Client(build_server(down, openapi_catalog(down))) as mcp:
        with pytest.raises(
            MCPError, match=f"cannot reach the Ordinaut API at http://127.0.0.1:{port}"
        ):
            await mcp.list_tools()
        failed = error_text(await mcp.call_tool("list_tasks", {}))
        assert "cannot reach the Ordinaut API" in failed
        assert "Is the Ordinaut API running?" in failed
