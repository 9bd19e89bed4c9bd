"""The hosted ``/mcp`` endpoint, driven by the official SDK's Streamable HTTP client against the
app served by uvicorn on a loopback port (lifespan off, as under Mangum on Lambda)."""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import httpx2
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from pydantic import BaseModel
from samples import CRON_TASK

from ordinaut.api import create_app
from ordinaut.api.app import ROUTE_MODULES, ROUTES_PACKAGE
from ordinaut.api.middleware import IN_PROCESS
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.mcp.tools import TOOLS

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
    "list_expression_functions",
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
        assert set(listed) == EVERY_TOOL
        created = ok(await mcp.call_tool("create_task", CRON_TASK))
        task_id = created["id"]
        assert created["status"] == "active"
        assert created["summary"].startswith("every weekday at 08:00 Europe/Chisinau, next: Tue")
        assert created["next_fire_times"][0] == "2026-03-03T06:00:00Z"

        page = ok(await mcp.call_tool("list_tasks", {"status": "active"}))
        assert [t["id"] for t in page["items"]] == [task_id]

        # an assistant files each end user's tasks under a label, and lists them by it
        for user in ("ana", "ion"):
            labels = {"user": user, "team": "ops"}
            ok(await mcp.call_tool("create_task", {**CRON_TASK, "title": user, "labels": labels}))
        by_label = ok(await mcp.call_tool("list_tasks", {"label": ["user:ana", "team:ops"]}))
        assert [t["title"] for t in by_label["items"]] == ["ana"]
        assert by_label["items"][0]["labels"] == {"user": "ana", "team": "ops"}

        queued = ok(await mcp.call_tool("run_task_now", {"task_id": task_id}))
        assert queued["task_id"] == task_id
        assert await run_worker() == 1
        run = ok(await mcp.call_tool("get_run", {"run_id": queued["run_id"]}))
        assert run["status"] == "succeeded"
        assert run["step_results"][0]["output"] == {"text": "weather in Chisinau"}


# --- raw JSON-RPC over plain HTTP: what any client (or a load balancer) sees ----------------

RPC_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


async def rpc(
    http: httpx.AsyncClient,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One stateless MCP request: no initialize, no session, one JSON answer."""
    sent = dict(RPC_HEADERS, **(headers or {}))
    if token:
        sent["Authorization"] = f"Bearer {token}"
    message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return await http.post("/mcp", json=message, headers=sent)


def tool_answer(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "mcp-session-id" not in response.headers  # stateless: nothing to stick to
    result: dict[str, Any] = response.json()["result"]
    return result


async def test_without_a_valid_token_it_is_a_json_401(
    client: httpx.AsyncClient, live_url: str
) -> None:
    for token, code in ((None, "unauthorized"), ("ord_at_not-a-real-token", "invalid_token")):
        response = await rpc(client, "tools/list", token=token)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        doc = response.json()
        assert doc["error"]["code"] == code
        assert doc["request_id"] == response.headers["x-request-id"]
        # exactly what REST answers
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        rest = await client.get("/tasks", headers=headers)
        assert rest.status_code == 401
        assert rest.json()["error"] == doc["error"]
    # the SDK's client gets an error, never a tool list, without a credential
    with pytest.raises(ExceptionGroup) as caught:
        async with hosted(live_url, None) as mcp:
            await mcp.list_tools()
    assert caught.group_contains(MCPError, match="error response", depth=2)


async def test_only_post_is_served(client: httpx.AsyncClient, agent: dict[str, Any]) -> None:
    """No GET stream (stateless: nothing could ever be sent on it, and a Lambda would hang on
    it) and no session to DELETE: a JSON 405 naming POST."""
    for method in ("GET", "DELETE"):
        response = await client.request(
            method, "/mcp", headers={**agent["headers"], "Accept": "text/event-stream"}
        )
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"
        assert response.json()["error"]["code"] == "method_not_allowed"


async def test_two_agents_never_see_each_others_tasks(
    live_url: str, make_agent: AgentFactory, run_worker: Worker
) -> None:
    alice = await make_agent(USER_SCOPES, name="alice")
    bob = await make_agent(USER_SCOPES, name="bob")
    async with hosted(live_url, alice["token"]) as a, hosted(live_url, bob["token"]) as b:
        task = ok(await a.call_tool("create_task", CRON_TASK))
        queued = ok(await a.call_tool("run_task_now", {"task_id": task["id"]}))
        ok(await b.call_tool("create_task", {**CRON_TASK, "title": "bob's"}))
        assert await run_worker() == 1

        seen = ok(await b.call_tool("list_tasks", {}))
        assert [t["title"] for t in seen["items"]] == ["bob's"]
        assert ok(await b.call_tool("list_runs", {}))["total"] == 0
        for name, arguments in (
            ("get_task", {"task_id": task["id"]}),
            ("update_task", {"task_id": task["id"], "title": "mine now"}),
            ("pause_task", {"task_id": task["id"]}),
            ("run_task_now", {"task_id": task["id"]}),
            ("delete_task", {"task_id": task["id"]}),
            ("get_run", {"run_id": queued["run_id"]}),
            ("retry_run", {"run_id": queued["run_id"]}),
        ):
            refused = error_text(await b.call_tool(name, arguments))
            assert refused.startswith("Not found:"), (name, refused)
        # only an admin may read another agent's rows, whatever the tool is asked
        owner = error_text(await b.call_tool("list_tasks", {"owner": alice["agent_id"]}))
        assert owner.startswith("Not allowed (forbidden)")

        mine = ok(await a.call_tool("get_task", {"task_id": task["id"]}))
        assert mine["title"] == "Morning briefing"
        assert mine["status"] == "active"
        assert [r["status"] for r in mine["recent_runs"]] == ["succeeded"]


async def test_each_tool_needs_the_scope_of_its_route(
    live_url: str, make_agent: AgentFactory
) -> None:
    reader = await make_agent(["tasks:read"], name="reader")
    async with hosted(live_url, reader["token"]) as mcp:
        assert ok(await mcp.call_tool("list_tasks", {}))["total"] == 0
        refused = error_text(await mcp.call_tool("create_task", CRON_TASK))
        assert refused.startswith("Not allowed (forbidden)")
        assert "tasks:write" in refused
        runs = error_text(await mcp.call_tool("list_runs", {}))
        assert "runs:read" in runs
    writer = await make_agent(["tasks:read", "tasks:write"], name="writer")
    async with hosted(live_url, writer["token"]) as mcp:
        task = ok(await mcp.call_tool("create_task", CRON_TASK))
        # get_task's extra read of the runs needs runs:read: without it, only that is left out
        shown = ok(await mcp.call_tool("get_task", {"task_id": task["id"]}))
        assert shown["summary"].startswith("every weekday")
        assert "recent_runs" not in shown


async def test_a_tool_call_is_the_rest_request_audited_under_the_mcp_request_id(
    client: httpx.AsyncClient, agent: dict[str, Any], pool: asyncpg.Pool
) -> None:
    response = await rpc(
        client,
        "tools/call",
        {"name": "create_task", "arguments": CRON_TASK},
        token=agent["token"],
        headers={"X-Request-ID": "mcp-call-1"},
    )
    result = tool_answer(response)
    assert result["isError"] is False
    task_id = result["structuredContent"]["id"]
    assert response.headers["x-request-id"] == "mcp-call-1"
    row = await pool.fetchrow(
        "SELECT actor_id, action, request_id FROM audit_log WHERE subject_id = $1", UUID(task_id)
    )
    assert row is not None
    assert (str(row["actor_id"]), row["action"], row["request_id"]) == (
        agent["agent_id"],
        "task.created",
        "mcp-call-1",
    )


async def test_one_mcp_request_is_charged_once_to_the_rate_limit(
    settings: Settings, pool: asyncpg.Pool, clock: FrozenClock, agent: dict[str, Any]
) -> None:
    """A create_task call sends two REST requests in process (create, then the preview for
    its words); only the /mcp request counts, as one REST request would."""
    app = create_app(replace(settings, rate_limit_per_minute=3), clock=clock, pool=pool)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for n in range(3):
            body = {"name": "create_task", "arguments": {**CRON_TASK, "title": f"t{n}"}}
            result = tool_answer(await rpc(http, "tools/call", body, token=agent["token"]))
            assert result["isError"] is False, result
            assert result["structuredContent"]["summary"]  # the in-process preview ran
        refused = await rpc(http, "tools/list", token=agent["token"])
        assert refused.status_code == 429
        assert refused.json()["error"]["details"]["limit"] == "rate_limit_per_minute"
    # the in-process requests cannot be marked from outside: the header is no scope key
    assert IN_PROCESS not in {k.lower() for k in RPC_HEADERS}


async def test_every_tool_takes_exactly_its_rest_request(
    client: httpx.AsyncClient, agent: dict[str, Any]
) -> None:
    """No drift: each tool's input schema, references resolved, is the REST operation's
    path and query parameters plus its JSON body's fields, read here from the app's routes
    and pydantic models (not from the OpenAPI code the tools use)."""
    listed = tool_answer(await rpc(client, "tools/list", token=agent["token"]))["tools"]
    schemas = {t["name"]: t["inputSchema"] for t in listed}
    assert set(schemas) == {t.name for t in TOOLS}
    routes = {
        (method, route.path): route
        for module in ROUTE_MODULES
        for route in importlib.import_module(f"{ROUTES_PACKAGE}.{module}").router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    for spec in TOOLS:
        if spec.name not in schemas:
            continue
        route = routes[(spec.method, spec.path)]
        schema = resolve(schemas[spec.name], schemas[spec.name].get("$defs", {}))
        dependants = list(walk(route.dependant))  # with sub-dependencies (paging)
        params = {p.alias: p for d in dependants for p in [*d.path_params, *d.query_params]}
        body = [p for d in dependants for p in d.body_params]
        expected = {name for name in params if name not in spec.fixed}
        required = {name for name, p in params.items() if p.field_info.is_required()}
        if body:
            (model_field,) = body
            model = model_field.field_info.annotation
            assert isinstance(model, type)
            assert issubclass(model, BaseModel)
            rest = model.model_json_schema(ref_template="#/$defs/{model}")
            rest_fields = resolve(rest, rest.get("$defs", {}))
            for name, field_schema in rest_fields["properties"].items():
                assert schema["properties"][name] == field_schema, (spec.name, name)
            expected |= set(rest_fields["properties"])
            required |= set(rest_fields.get("required", []))
        assert set(schema["properties"]) == expected, spec.name
        assert set(schema.get("required", [])) == required, spec.name
        for name in spec.fixed:
            assert name in params, (spec.name, name)  # a fixed argument is a real parameter


def walk(dependant: Dependant) -> Iterator[Dependant]:
    """A route's dependant and every dependency under it."""
    yield dependant
    for sub in dependant.dependencies:
        yield from walk(sub)


def resolve(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``#/$defs/X`` reference replaced by X, recursively; ``$defs``,
    titles, descriptions and examples dropped (documentation, not the request's shape), and a
    ``None`` default too (OpenAPI says it by leaving the field out of ``required``)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            merged = {
                **defs[ref.rsplit("/", 1)[1]],
                **{k: v for k, v in node.items() if k != "$ref"},
            }
            return resolve(merged, defs)
        return {
            k: resolve(v, defs)
            for k, v in node.items()
            if k not in ("$defs", "title", "examples", "description")
            and not (k == "default" and v is None)
        }
    if isinstance(node, list):
        return [resolve(v, defs) for v in node]
    return node
