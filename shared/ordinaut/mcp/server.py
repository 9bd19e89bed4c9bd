"""The MCP server: ``tools/list`` from the catalogue, ``tools/call`` as the tool's REST request.

Every call goes through ``AsyncOrdinaut.send`` with the caller's own credential, so the API
checks scopes, tenancy, validation, limits and writes the audit log exactly as for any REST
client; the hosted endpoint hands in a client whose transport is the API app itself. An API
error comes back as a tool error worded for a model: what was wrong, which argument, and what
to call next.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)
from mcp.types import (
    Tool as MCPTool,
)

from ordinaut import __version__
from ordinaut.client import (
    AsyncOrdinaut,
    AuthError,
    ConflictError,
    NotFoundError,
    OrdinautAPIError,
    OrdinautConnectionError,
    PermissionDeniedError,
    RateLimitedError,
    ValidationError,
)
from ordinaut.client.calls import Call, new_key
from ordinaut.client.words import local_time, summary
from ordinaut.mcp.tools import ArgumentError, Catalog, Tool, request_of

INSTRUCTIONS = """\
Ordinaut runs tasks for you on a schedule. A task is a schedule (cron, rrule, once or event)
plus a pipeline of steps; each step calls a tool (list_pipeline_tools) with arguments that may
use ${params.x}, ${steps.<id>.output...}, ${event.payload...} and expression functions
(list_expression_functions). Usual flow: list_pipeline_tools -> preview_schedule ->
validate_task (dry_run) -> create_task -> run_task_now -> get_run. Instants are ISO 8601 in UTC
unless a timezone (IANA name, e.g. Europe/Chisinau) is given; durations are in seconds unless a
field ends in _ms. You only ever see your own tasks and runs. Errors: "Rejected" lists the
arguments to fix; "Not found" is an id that is wrong or not yours; "Not possible now" is a
state that forbids the change (get_task shows it); "Not allowed" is a scope this credential
lacks; "Rate limited" says when to try again."""

CatalogSource = Callable[[], Awaitable[Catalog]]

_HINTS = (
    ("schedule_expr", "check it with preview_schedule first"),
    ("uses", "call list_pipeline_tools for the tool names"),
    ("with", "list_pipeline_tools shows each tool's input_schema"),
    ("timezone", "use an IANA zone name such as Europe/Chisinau or UTC"),
    ("task_id", "ids come from list_tasks"),
    ("run_id", "ids come from list_runs"),
)


def _argument(field: str) -> str:
    """The API's field path in terms of the tool's arguments (they are the request's)."""
    return re.sub(r"^(body|path|query)\.", "", field)


def explain(exc: OrdinautAPIError) -> str:
    """An API error as a message a model can act on."""
    if isinstance(exc, ValidationError):
        lines = [f"Rejected ({exc.code}): {exc.message}. Fix these arguments and call again:"]
        for p in exc.problems or [{"field": "?", "message": exc.message}]:
            name = _argument(p["field"])
            last = re.split(r"[.\[]", name)[-1].rstrip("]")
            hint = next((h for key, h in _HINTS if key == last), "")
            lines.append(f"- {name}: {p['message']}" + (f" ({hint})" if hint else ""))
        return "\n".join(lines)
    if isinstance(exc, NotFoundError):
        return (
            f"Not found: {exc.message}. Ids come from list_tasks or list_runs (another "
            "agent's tasks and runs are never visible)."
        )
    if isinstance(exc, ConflictError):
        details = exc.details if isinstance(exc.details, dict) else {}
        allowed = details.get("allowed_from")
        extra = f" (allowed from: {', '.join(allowed)})" if allowed else ""
        return f"Not possible now: {exc.message}{extra}. get_task shows the current status."
    if isinstance(exc, PermissionDeniedError):
        return (
            f"Not allowed ({exc.code}): {exc.message}. This credential lacks the scope; an "
            "admin can grant it to the agent."
        )
    if isinstance(exc, AuthError):
        return (
            f"Ordinaut refused the credential ({exc.code}): {exc.message}. Log in again or "
            "use a token that is still valid."
        )
    if isinstance(exc, RateLimitedError):
        wait = f" Retry in {exc.retry_after:.0f} s." if exc.retry_after else ""
        return f"Rate limited ({exc.code}): {exc.message}.{wait}"
    return f"Ordinaut error {exc.status} {exc.code}: {exc.message}"


def _result(data: dict[str, Any]) -> CallToolResult:
    text = json.dumps(data, ensure_ascii=False)
    return CallToolResult(content=[TextContent(text=text)], structured_content=data)


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=text)], is_error=True)


# A task that is not active does not fire at the times its schedule gives.
_STATUS_NOTES = {
    "paused": " (paused: these are the times once resumed)",
    "canceled": " (canceled: it never runs again)",
}


def _instants(values: list[str]) -> list[datetime]:
    return [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]


class _Tools:
    """The calls of one connection: ``client`` carries the caller's credential."""

    def __init__(self, client: AsyncOrdinaut) -> None:
        self.client = client

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        return await self.client.send(
            Call(
                method,
                path,
                lambda data: data,
                params=query or None,
                json=body,
                headers=headers or {},
                # GET, PUT, DELETE and a create with its Idempotency-Key may be resent
                safe=method in ("GET", "PUT", "DELETE") or headers is not None,
            )
        )

    async def call(self, tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
        request = request_of(tool, arguments)
        # one key per tool call: the client's own retries of it replay the first answer
        headers = {"Idempotency-Key": new_key()} if tool.spec.name == "create_task" else None
        data = await self.send(
            request.method, request.path, query=request.query, body=request.body, headers=headers
        )
        name = tool.spec.name
        if name == "delete_task":
            return {"deleted": True, "task_id": str(arguments["task_id"])}
        if name in ("create_task", "update_task", "get_task"):
            return await self._with_schedule(data, runs=name == "get_task")
        if name == "preview_schedule":
            return self._preview_words(data, arguments)
        return data if isinstance(data, dict) else {"result": data}

    async def _with_schedule(self, task: dict[str, Any], *, runs: bool) -> dict[str, Any]:
        """The task with its schedule in words, next fire times and (get_task) latest runs.
        These are extra reads: the operation itself already succeeded, so a failure here
        (a credential without runs:read, a dropped connection) only leaves them out."""
        out = dict(task)
        try:
            preview = await self.send(
                "GET", f"/tasks/{task['id']}/preview", query={"limit": 5 if runs else 3}
            )
            fires = preview.get("fire_times", [])
            out["next_fire_times"] = fires
            out["summary"] = summary(
                task["schedule_kind"], task["schedule_expr"], task["timezone"], _instants(fires)
            ) + _STATUS_NOTES.get(task.get("status", ""), "")
        except (OrdinautAPIError, OrdinautConnectionError):
            pass
        if runs:
            try:
                page = await self.send("GET", "/runs", query={"task_id": task["id"], "limit": 5})
                out["recent_runs"] = page.get("items", [])
            except (OrdinautAPIError, OrdinautConnectionError):
                pass
        return out

    @staticmethod
    def _preview_words(preview: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
        timezone = preview.get("timezone") or arguments.get("timezone") or "UTC"
        fires = _instants(preview.get("fire_times", []))
        return {
            **preview,
            "summary": summary(
                str(arguments.get("schedule_kind")),
                str(arguments.get("schedule_expr")),
                timezone,
                fires,
            ),
            "fire_times_local": [local_time(t, timezone) for t in fires],
        }


def build_server(client: AsyncOrdinaut, catalog: CatalogSource) -> Server[Any]:
    """An MCP server whose tools send their REST requests through ``client``. ``catalog``
    gives the tools (read once from the API's OpenAPI document)."""
    tools = _Tools(client)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        try:
            served = await catalog()
        except OrdinautConnectionError as exc:
            # no tools to offer: a protocol error, which the client shows to its user
            raise MCPError(
                code=INTERNAL_ERROR, message=f"{exc}. Is the Ordinaut API running?"
            ) from None
        return ListToolsResult(
            tools=[
                MCPTool(
                    name=t.spec.name,
                    description=t.spec.description,
                    input_schema=t.input_schema,
                    annotations=t.spec.annotations,
                )
                for t in served.tools.values()
            ]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult:
        try:
            served = await catalog()
        except OrdinautConnectionError as exc:
            return _error(f"{exc}. Is the Ordinaut API running?")
        tool = served.tools.get(params.name)
        if tool is None:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"unknown tool {params.name!r}; tools/list names the tools",
            )
        try:
            return _result(await tools.call(tool, dict(params.arguments or {})))
        except ArgumentError as exc:
            return _error(f"Rejected: {exc}. Fix the arguments and call again.")
        except OrdinautAPIError as exc:
            return _error(explain(exc))
        except OrdinautConnectionError as exc:
            return _error(f"{exc}. Is the Ordinaut API running?")

    return Server(
        "ordinaut",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def openapi_catalog(client: AsyncOrdinaut) -> CatalogSource:
    """The catalogue of the API ``client`` talks to, read from its ``/openapi.json`` on first
    use and kept (a failed read is tried again on the next call)."""
    built: list[Catalog] = []

    async def source() -> Catalog:
        if not built:
            document = await client.send(
                Call("GET", "/openapi.json", lambda data: data, safe=True, auth=False)
            )
            built.append(Catalog.from_openapi(document))
        return built[0]

    return source
