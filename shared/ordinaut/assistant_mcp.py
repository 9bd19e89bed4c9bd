"""``ordinaut mcp``: an MCP server (official ``mcp`` SDK) that gives an assistant Ordinaut's tools.

Every tool is one or two REST calls through ``AsyncOrdinaut`` with the assistant's own
credential. Failures come back as tool errors worded for a model: what was wrong, which
argument, and what to call next. (The module is not called ``mcp`` so that it never shadows
the SDK's import name.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from ordinaut import __version__
from ordinaut.client import (
    AsyncOrdinaut,
    AuthError,
    ConflictError,
    NotFoundError,
    OrdinautAPIError,
    OrdinautConnectionError,
    Run,
    Task,
    ValidationError,
)
from ordinaut.client.credentials import Connection
from ordinaut.client.words import describe_schedule, local_time, summary
from ordinaut.vocabulary import RunStatus, TaskStatus

INSTRUCTIONS = """\
Ordinaut runs tasks for you on a schedule. A task is a schedule (cron, rrule, once or event)
plus a pipeline of steps; each step calls a tool (see list_pipeline_tools) with arguments that
may use ${params.x}, ${steps.<id>.output...}, ${event.payload...}. Usual flow:
list_pipeline_tools -> preview_schedule -> create_task -> run_task_now -> get_run.
Times are UTC unless a timezone (IANA name, e.g. Europe/Chisinau) is given."""

TaskId = Annotated[str, Field(description="Task id from create_task or list_tasks.")]
RunId = Annotated[str, Field(description="Run id from run_task_now or list_runs.")]
# the kinds create_task offers: every kind of ordinaut.vocabulary but condition
ScheduleKind = Literal["cron", "rrule", "once", "event"]

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

_HINTS = (
    ("schedule_expr", "check it with preview_schedule first"),
    ("uses", "call list_pipeline_tools for the tool names"),
    ("timezone", "use an IANA zone name such as Europe/Chisinau or UTC"),
    ("with", "list_pipeline_tools shows each tool's input_schema"),
)


def _argument(field: str) -> str:
    """The API's field path in terms of create_task's arguments."""
    field = re.sub(r"^(body|path|query)\.", "", field)
    return re.sub(r"^(task\.)?payload\.", "", field)


def _explain(exc: OrdinautAPIError) -> str:
    """An API error as a message a model can act on."""
    if isinstance(exc, ValidationError):
        lines = [f"Rejected ({exc.code}): {exc.message}. Fix these arguments and call again:"]
        for p in exc.problems or [{"field": "?", "message": exc.message}]:
            name = _argument(p["field"])
            hint = next((h for key, h in _HINTS if key in name.split(".")[-1:]), "")
            lines.append(f"- {name}: {p['message']}" + (f" ({hint})" if hint else ""))
        return "\n".join(lines)
    if isinstance(exc, NotFoundError):
        return f"Not found: {exc.message}. Ids come from list_tasks or list_runs."
    if isinstance(exc, ConflictError):
        details = exc.details if isinstance(exc.details, dict) else {}
        allowed = details.get("allowed_from")
        extra = f" (allowed from: {', '.join(allowed)})" if allowed else ""
        return f"Not possible now: {exc.message}{extra}. get_task shows the current status."
    if isinstance(exc, AuthError):
        return (
            f"Ordinaut refused the credential ({exc.code}): {exc.message}. The MCP server needs "
            "ORDINAUT_TOKEN (or `ordinaut login`) with the scopes this tool uses."
        )
    return f"Ordinaut error {exc.status} {exc.code}: {exc.message}"


@contextmanager
def _tool_errors() -> Iterator[None]:
    try:
        yield
    except OrdinautAPIError as exc:
        raise ToolError(_explain(exc)) from None
    except OrdinautConnectionError as exc:
        raise ToolError(f"{exc}. Is the Ordinaut API running?") from None


def _task_brief(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "title": task.title,
        "status": task.status,
        "schedule": describe_schedule(task.schedule_kind, task.schedule_expr, task.timezone),
        "next_run_at": task.next_run_at.isoformat() if task.next_run_at else None,
    }


def _run_brief(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "task_id": run.task_id,
        "status": run.status,
        "attempt": run.attempt,
        "trigger": run.trigger,
        "scheduled_for": run.scheduled_for.isoformat(),
        "duration_ms": run.duration_ms,
    }


def _run_full(run: Run) -> dict[str, Any]:
    steps = [
        {k: step.get(k) for k in ("id", "uses", "status", "duration_ms", "output", "error")}
        for step in run.step_results or []
    ]
    return {**_run_brief(run), "output": run.output, "error": run.error, "steps": steps}


def _z(times: list[Any]) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]


def build_server(client: AsyncOrdinaut) -> MCPServer:
    """The MCP server; every tool calls the Ordinaut API through ``client``."""
    server: MCPServer = MCPServer("ordinaut", instructions=INSTRUCTIONS, version=__version__)

    @server.tool(
        annotations=WRITE,
        description=(
            "Create a scheduled task: a schedule plus a pipeline of tool steps. Returns its id, "
            "the schedule in words and the next fire times. Invalid input is rejected naming "
            "the argument to fix. Example: title='Morning briefing', schedule_kind='cron', "
            "schedule_expr='0 8 * * 1-5', timezone='Europe/Chisinau', pipeline=[{'id': 'say', "
            "'uses': 'echo', 'with': {'text': 'good morning ${params.name}'}}], "
            "params={'name': 'Ana'}"
        ),
    )
    async def create_task(
        title: Annotated[str, Field(description="Short name, 1-200 characters.")],
        schedule_kind: Annotated[
            ScheduleKind,
            Field(description="cron, rrule (RFC 5545), once (one instant) or event (a topic)."),
        ],
        schedule_expr: Annotated[
            str,
            Field(
                description="cron '0 8 * * 1-5'; rrule 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9'; "
                "once '2026-03-08T09:00:00'; event 'orders.*'."
            ),
        ],
        pipeline: Annotated[
            list[dict[str, Any]],
            Field(description="Steps: {id, uses, with?, save_as?, if?, timeout_seconds?}."),
        ],
        timezone: Annotated[str, Field(description="IANA zone, e.g. Europe/Chisinau.")] = "UTC",
        params: Annotated[
            dict[str, Any] | None, Field(description="Values steps read as ${params.x}.")
        ] = None,
        description: str = "",
        max_retries: Annotated[int, Field(ge=0, le=100)] = 3,
    ) -> dict[str, Any]:
        body = {
            "title": title,
            "description": description,
            "schedule_kind": schedule_kind,
            "schedule_expr": schedule_expr,
            "timezone": timezone,
            "max_retries": max_retries,
            "payload": {"params": params or {}, "pipeline": pipeline},
        }
        with _tool_errors():
            task = await client.create_task(body)
            fires = (await client.preview_task(task.id, limit=3)).fire_times
        return {
            **_task_brief(task),
            "summary": summary(task.schedule_kind, task.schedule_expr, task.timezone, fires),
            "next_fire_times": _z(fires),
        }

    @server.tool(
        annotations=READ,
        description=(
            "Check a schedule before creating a task: the schedule in plain words and its next "
            "fire times, from the scheduler's own code. Example: schedule_kind='cron', "
            "schedule_expr='0 8 * * 1-5', timezone='Europe/Chisinau' -> 'every weekday at "
            "08:00 Europe/Chisinau, next: Mon 2026-03-02 08:00 EET, ...'"
        ),
    )
    async def preview_schedule(
        schedule_kind: ScheduleKind,
        schedule_expr: str,
        timezone: str = "UTC",
        count: Annotated[int, Field(ge=1, le=50, description="How many fire times.")] = 5,
    ) -> dict[str, Any]:
        with _tool_errors():
            preview = await client.preview_schedule(
                schedule_kind, schedule_expr, timezone, limit=count
            )
        return {
            "summary": summary(schedule_kind, schedule_expr, timezone, preview.fire_times),
            "fire_times_utc": _z(preview.fire_times),
            "fire_times_local": [local_time(t, timezone) for t in preview.fire_times],
        }

    @server.tool(
        annotations=READ,
        description=(
            "List your tasks (newest first) with status, schedule in words and next run. "
            "Example: status='active', limit=20"
        ),
    )
    async def list_tasks(
        status: TaskStatus | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> dict[str, Any]:
        with _tool_errors():
            page = await client.list_tasks(status=status, limit=limit)
        return {"total": page.total, "tasks": [_task_brief(t) for t in page.items]}

    @server.tool(
        annotations=READ,
        description=(
            "One task in full: fields, pipeline, schedule in words, next fire times and its "
            "5 latest runs. Example: task_id='3f2b...'"
        ),
    )
    async def get_task(task_id: TaskId) -> dict[str, Any]:
        with _tool_errors():
            task = await client.get_task(task_id)
            fires = (await client.preview_task(task.id, limit=5)).fire_times
            runs = (await client.list_runs(task_id=task.id, limit=5)).items
        return {
            **_task_brief(task),
            "summary": summary(task.schedule_kind, task.schedule_expr, task.timezone, fires),
            "schedule_kind": task.schedule_kind,
            "schedule_expr": task.schedule_expr,
            "timezone": task.timezone,
            "description": task.description,
            "payload": task.payload,
            "max_retries": task.max_retries,
            "next_fire_times": _z(fires),
            "recent_runs": [_run_brief(r) for r in runs],
        }

    async def _transition(action: str, task_id: str) -> dict[str, Any]:
        with _tool_errors():
            task = await getattr(client, f"{action}_task")(task_id)
        return _task_brief(task)

    @server.tool(
        annotations=WRITE,
        description="Pause an active task: no new runs until resume_task. Example: task_id='3f2b...'",
    )
    async def pause_task(task_id: TaskId) -> dict[str, Any]:
        return await _transition("pause", task_id)

    @server.tool(
        annotations=WRITE,
        description=(
            "Resume a paused task; it fires again from its next scheduled time. "
            "Example: task_id='3f2b...'"
        ),
    )
    async def resume_task(task_id: TaskId) -> dict[str, Any]:
        return await _transition("resume", task_id)

    @server.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True),
        description=(
            "Cancel a task for good (queued runs are canceled; cannot be resumed). "
            "Example: task_id='3f2b...'"
        ),
    )
    async def cancel_task(task_id: TaskId) -> dict[str, Any]:
        return await _transition("cancel", task_id)

    @server.tool(
        annotations=WRITE,
        description=(
            "Queue one run of a task now, whatever its schedule. With wait_seconds > 0, waits up "
            "to that long and returns the finished run with its step results; else call get_run "
            "with the run_id. Example: task_id='3f2b...', wait_seconds=20"
        ),
    )
    async def run_task_now(
        task_id: TaskId,
        wait_seconds: Annotated[int, Field(ge=0, le=120)] = 0,
    ) -> dict[str, Any]:
        with _tool_errors():
            queued = await client.run_task_now(task_id)
            if wait_seconds:
                try:
                    run = await client.wait_for_run(queued.run_id, max_wait=wait_seconds)
                except TimeoutError:
                    run = await client.get_run(queued.run_id)
                return _run_full(run)
        return {
            "run_id": queued.run_id,
            "task_id": queued.task_id,
            "status": "queued",
            "next": "call get_run with this run_id to see its status and step results",
        }

    @server.tool(
        annotations=READ,
        description=(
            "List runs, newest first, optionally of one task or in one status; "
            "status='dead_letter' lists every run that ended without success and will not be "
            "retried. Example: task_id='3f2b...', status='dead_letter', limit=10"
        ),
    )
    async def list_runs(
        task_id: Annotated[str | None, Field(description="Only this task's runs.")] = None,
        status: RunStatus | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> dict[str, Any]:
        with _tool_errors():
            page = await client.list_runs(task_id=task_id, status=status, limit=limit)
        return {"total": page.total, "runs": [_run_brief(r) for r in page.items]}

    @server.tool(
        annotations=READ,
        description=(
            "One run with its output, error and every step's status, output and error. "
            "Example: run_id='9c1d...'"
        ),
    )
    async def get_run(run_id: RunId) -> dict[str, Any]:
        with _tool_errors():
            run = await client.get_run(run_id)
        return _run_full(run)

    @server.tool(
        annotations=WRITE,
        description=(
            "Publish an event; every active event task whose topic matches gets one run, with "
            "the payload as ${event.payload}. Same event_id twice counts once. "
            "Example: topic='orders.created', payload={'order_id': 7}"
        ),
    )
    async def publish_event(
        topic: Annotated[str, Field(description="e.g. orders.created")],
        payload: dict[str, Any] | None = None,
        event_id: Annotated[str | None, Field(description="Optional idempotency id.")] = None,
    ) -> dict[str, Any]:
        with _tool_errors():
            accepted = await client.publish_event(topic, payload or {}, event_id=event_id)
        return accepted.to_json()

    @server.tool(
        annotations=READ,
        description=(
            "The tools a pipeline step can use ('uses'), each with its input and output JSON "
            "Schema. Example step: {'id': 'get', 'uses': 'http.request', 'with': {'method': "
            "'GET', 'url': 'https://api.example.com/weather'}}"
        ),
    )
    async def list_pipeline_tools() -> dict[str, Any]:
        with _tool_errors():
            tools = await client.list_tools()
        return {
            "tools": [
                {
                    "name": t.name,
                    "description": t.description,
                    "input_schema": t.input_schema,
                    "output_schema": t.output_schema,
                }
                for t in tools
            ]
        }

    return server


async def serve(conn: Connection, *, transport: str, host: str, port: int) -> None:
    """Run the server until its transport closes (stdin ends) or it is interrupted."""
    async with AsyncOrdinaut(conn.url, **conn.client_kwargs()) as client:
        server = build_server(client)
        if transport == "stdio":
            await server.run_stdio_async()
        else:
            await server.run_streamable_http_async(host=host, port=port)


def main(conn: Connection, *, transport: str, host: str, port: int) -> int:
    """Entry point of ``ordinaut mcp``; returns the exit code."""
    try:
        anyio.run(lambda: serve(conn, transport=transport, host=host, port=port))
    except KeyboardInterrupt:
        pass
    return 0
