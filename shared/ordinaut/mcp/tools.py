"""Every MCP tool as one REST operation, and its input schema read from the API's OpenAPI.

A tool is a method and a path template plus a description written for a model. Its input
schema is not written here: ``Catalog`` builds it from the OpenAPI document of the API it talks
to (the operation's path and query parameters, and the properties of its JSON body), so a tool
takes exactly the REST request's fields, and the API validates them the same way for both.
``request_of`` splits a tool call's arguments back into that request. Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mcp.types import ToolAnnotations

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
IDEMPOTENT = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)

COMPONENTS = "#/components/schemas/"
DEFS = "#/$defs/"


@dataclass(frozen=True)
class ToolSpec:
    """One tool: the REST operation it sends and how a model should use it.

    ``fixed`` arguments are sent on every call and left out of the input schema
    (``list_dead_letters`` is ``GET /runs`` with ``status=dead_letter``); ``header`` names
    request headers the tool sets itself (``Idempotency-Key`` on create)."""

    name: str
    method: str
    path: str
    description: str
    annotations: ToolAnnotations
    fixed: Mapping[str, Any] = field(default_factory=dict)


TASK_ID_EXAMPLE = "task_id='0b9c6a52-...'"
RUN_ID_EXAMPLE = "run_id='7f1e2d3c-...'"

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "create_task",
        "POST",
        "/tasks",
        "Create a scheduled task: a schedule plus a pipeline of tool steps. Answers the stored "
        "task with `summary` (the schedule in words) and `next_fire_times` (UTC). schedule_kind: "
        "cron ('0 8 * * 1-5'), rrule ('FREQ=WEEKLY;BYDAY=MO;BYHOUR=9'), once "
        "('2026-03-08T09:00:00', read in `timezone`) or event (a topic such as 'orders.*'); "
        "timezone is an IANA name. Example: title='Morning briefing', schedule_kind='cron', "
        "schedule_expr='0 8 * * 1-5', timezone='Europe/Chisinau', payload={'params': {'city': "
        "'Chisinau'}, 'pipeline': [{'id': 'say', 'uses': 'echo', 'with': {'text': 'weather in "
        "${params.city}'}}]}, labels={'user': 'ana'} (to find an end user's tasks later). A "
        "rejection names each argument to fix; check schedules with preview_schedule and step "
        "tools with list_pipeline_tools.",
        WRITE,
    ),
    ToolSpec(
        "update_task",
        "PATCH",
        "/tasks/{task_id}",
        "Change some fields of a task; fields not given keep their value (payload is replaced "
        "as a whole). A changed schedule moves its pending runs. Answers the task with "
        "`summary` and `next_fire_times`. Example: task_id='0b9c6a52-...', schedule_expr="
        "'0 9 * * 1-5'. Not possible on a canceled task (create a new one).",
        IDEMPOTENT,
    ),
    ToolSpec(
        "delete_task",
        "DELETE",
        "/tasks/{task_id}",
        "Delete a task and its whole run history, for good. To only stop it, use cancel_task "
        f"(keeps the history) or pause_task. Example: {TASK_ID_EXAMPLE}",
        DESTRUCTIVE,
    ),
    ToolSpec(
        "pause_task",
        "POST",
        "/tasks/{task_id}/pause",
        "Pause an active task: no scheduled runs until resume_task; its queued scheduled runs "
        f"are dropped. Only an active task can be paused. Example: {TASK_ID_EXAMPLE}",
        WRITE,
    ),
    ToolSpec(
        "resume_task",
        "POST",
        "/tasks/{task_id}/resume",
        "Resume a paused task; it fires again from its next fire time after now (missed ones "
        f"are not replayed). Only a paused task can be resumed. Example: {TASK_ID_EXAMPLE}",
        WRITE,
    ),
    ToolSpec(
        "cancel_task",
        "POST",
        "/tasks/{task_id}/cancel",
        "End a task for good: its queued runs are canceled and it can never run or be resumed "
        f"again (its history stays). Example: {TASK_ID_EXAMPLE}",
        DESTRUCTIVE,
    ),
    ToolSpec(
        "snooze_task",
        "POST",
        "/tasks/{task_id}/snooze",
        "Postpone a task's pending work by delay_seconds (seconds, 1 to 31536000): runs due "
        "before then start when the snooze ends; the schedule itself does not change. Example: "
        "task_id='0b9c6a52-...', delay_seconds=3600, reason='user is on a flight'",
        WRITE,
    ),
    ToolSpec(
        "run_task_now",
        "POST",
        "/tasks/{task_id}/run_now",
        "Queue one run of a task now, whatever its schedule. Answers run_id at once; the run "
        "happens in the background, so call get_run with the run_id to see its status and "
        "each step's output (status queued -> running -> succeeded / failed / dead_letter). "
        f"Example: {TASK_ID_EXAMPLE}",
        WRITE,
    ),
    ToolSpec(
        "preview_schedule",
        "POST",
        "/schedules/preview",
        "Check a schedule before creating a task: its next fire times in UTC and in its time "
        "zone, and `summary`, the schedule in plain words, from the scheduler's own code. "
        "Example: schedule_kind='cron', schedule_expr='0 8 * * 1-5', timezone="
        "'Europe/Chisinau', limit=3 -> 'every weekday at 08:00 Europe/Chisinau, next: "
        "Tue 2026-03-03 08:00 EET, ...'",
        READ,
    ),
    ToolSpec(
        "preview_task",
        "GET",
        "/tasks/{task_id}/preview",
        "The next fire times (UTC) of an existing task, optionally in a window (`from`, "
        "`until`: ISO 8601 instants with an offset); for a paused task, when it would fire once "
        "resumed. Example: "
        "task_id='0b9c6a52-...', limit=5",
        READ,
    ),
    ToolSpec(
        "validate_task",
        "POST",
        "/tasks/validate",
        "Validate a whole task (task={...create_task arguments...}) or only a payload without "
        "storing anything; with dry_run=true every step is rendered with its resolved `with` "
        "but not run (sample_params stands in for params). A problem comes back as a "
        "rejection naming the field. Example: task={'title': 't', 'schedule_kind': 'cron', "
        "'schedule_expr': '0 8 * * *', 'payload': {'pipeline': [...]}}, dry_run=true",
        READ,
    ),
    ToolSpec(
        "list_tasks",
        "GET",
        "/tasks",
        "List your tasks, newest first, a page at a time (`limit` per page, `offset` to skip; "
        "`has_more` says whether another page exists). Filter by status, schedule_kind, "
        "labels (every key:value given must match) or a title search. Example: "
        "status='active', label=['user:ana'], search='briefing', limit=20",
        READ,
    ),
    ToolSpec(
        "get_task",
        "GET",
        "/tasks/{task_id}",
        "One task in full (schedule, payload, status, next_run_at in UTC) with `summary` (the "
        f"schedule in words), `next_fire_times` and `recent_runs` (5 latest). Example: "
        f"{TASK_ID_EXAMPLE}",
        READ,
    ),
    ToolSpec(
        "list_runs",
        "GET",
        "/runs",
        "List runs, newest first, without step details: of one task (task_id), in one status, "
        "or in a window of scheduled times (start_time / end_time, ISO 8601 with an offset). "
        "duration_ms is milliseconds. Example: task_id='0b9c6a52-...', status='failed', limit=10",
        READ,
    ),
    ToolSpec(
        "get_run",
        "GET",
        "/runs/{run_id}",
        "One run with its output, error and step_results: every step's status, rendered "
        "input, output and error, for finding out why a run failed. Example: "
        f"{RUN_ID_EXAMPLE}",
        READ,
    ),
    ToolSpec(
        "retry_run",
        "POST",
        "/runs/{run_id}/retry",
        "Queue a dead-lettered or failed run again now, with a fresh retry budget; fix the "
        "task first (update_task) if the failure was in its pipeline. Any other state is "
        f"refused. Example: {RUN_ID_EXAMPLE}",
        WRITE,
    ),
    ToolSpec(
        "cancel_run",
        "POST",
        "/runs/{run_id}/cancel",
        "Cancel a queued or running run (a running attempt's result is discarded); the task "
        f"keeps its schedule. Any other state is refused. Example: {RUN_ID_EXAMPLE}",
        DESTRUCTIVE,
    ),
    ToolSpec(
        "list_dead_letters",
        "GET",
        "/runs",
        "Your dead letters: runs that ended without success and will not be retried by "
        "themselves, newest first. Look at one with get_run, then retry_run it once fixed. "
        "Example: task_id='0b9c6a52-...', limit=10",
        READ,
        fixed={"status": "dead_letter"},
    ),
    ToolSpec(
        "publish_event",
        "POST",
        "/events",
        "Publish an event: every active event task of yours whose topic pattern matches gets "
        "one run with the payload as ${event.payload}. The same event_id twice counts once "
        "(a retry never runs tasks twice). Example: topic='orders.created', payload="
        "{'order_id': 7}, event_id='order-7-created'",
        WRITE,
    ),
    ToolSpec(
        "list_pipeline_tools",
        "GET",
        "/tools",
        "The tools a pipeline step can use (a step's `uses`), each with the JSON Schema of its "
        "`with` input and of its output, its default timeout in seconds and the scopes it "
        "needs. Example step: {'id': 'get', 'uses': 'http.request', 'with': {'method': 'GET', "
        "'url': 'https://api.example.com/weather'}}",
        READ,
    ),
    ToolSpec(
        "list_expression_functions",
        "GET",
        "/pipeline/functions",
        "Every function a ${...} expression in a step can call, with its signature, what it "
        "does and an example, e.g. ${length(steps.fetch.output.items)}. Use it instead of "
        "guessing function names.",
        READ,
    ),
)

BY_NAME = {spec.name: spec for spec in TOOLS}


class SchemaError(ValueError):
    """The OpenAPI document does not describe a tool's operation the way a tool needs."""


class MissingOperation(SchemaError):
    """The API has no such operation (an older server): the tool is not offered."""


def _refs(node: Any) -> Iterator[str]:
    """Every component name ``node`` references, at any depth."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENTS):
            yield ref[len(COMPONENTS) :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _retarget(node: Any) -> Any:
    """A deep copy with ``#/components/schemas/X`` references turned into ``#/$defs/X``."""
    if isinstance(node, dict):
        out = {k: _retarget(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENTS):
            out["$ref"] = DEFS + ref[len(COMPONENTS) :]
        return out
    if isinstance(node, list):
        return [_retarget(v) for v in node]
    return node


@dataclass(frozen=True)
class Route:
    """Where each argument of one tool goes in its REST request."""

    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body: bool


def _body_model(operation: Mapping[str, Any], components: Mapping[str, Any], where: str) -> Any:
    """The JSON body's schema, its reference followed (None without a JSON body)."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = body.get("schema")
    if schema is None:
        return None
    ref = schema.get("$ref", "")
    if not ref.startswith(COMPONENTS):
        return schema
    if ref[len(COMPONENTS) :] not in components:
        raise SchemaError(f"{where}: unknown component {ref[len(COMPONENTS) :]!r}")
    return components[ref[len(COMPONENTS) :]]


def _referenced(
    properties: Mapping[str, Any], components: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """The components ``properties`` reference, transitively, sorted by name."""
    wanted: dict[str, Any] = {}
    pending = list(_refs(properties))
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        if name not in components:
            raise SchemaError(f"{where}: unknown component {name!r}")
        wanted[name] = components[name]
        pending.extend(_refs(components[name]))
    return {name: wanted[name] for name in sorted(wanted)}


def input_schema(openapi: Mapping[str, Any], spec: ToolSpec) -> tuple[dict[str, Any], Route]:
    """The tool's input schema from the operation's parameters and JSON body, with the
    components they reference as ``$defs``; raises ``SchemaError`` when the document lacks
    the operation. Header parameters are the tool's own business (``ToolSpec``)."""
    where = f"{spec.method} {spec.path}"
    operation = openapi.get("paths", {}).get(spec.path, {}).get(spec.method.lower())
    if operation is None:
        raise MissingOperation(f"{where} is not in the API's OpenAPI document")
    components = openapi.get("components", {}).get("schemas", {})
    properties: dict[str, Any] = {}
    required: list[str] = []
    placed: dict[str, list[str]] = {"path": [], "query": []}
    for parameter in operation.get("parameters", []):
        kind, name = parameter["in"], parameter["name"]
        if kind not in placed or name in spec.fixed:
            continue
        prop = copy.deepcopy(parameter.get("schema", {}))
        if parameter.get("description"):
            prop.setdefault("description", parameter["description"])
        properties[name] = prop
        placed[kind].append(name)
        if parameter.get("required"):
            required.append(name)
    model = _body_model(operation, components, where)
    if model is not None:
        if model.get("type") != "object" or "properties" not in model:
            raise SchemaError(f"{where}: the body is not an object schema")
        for name, prop in model["properties"].items():
            if name in properties:
                raise SchemaError(f"{where}: {name!r} is a parameter and a field")
            properties[name] = copy.deepcopy(prop)
        required.extend(model.get("required", []))
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    defs = _referenced(properties, components, where)
    if defs:
        schema["$defs"] = defs
    route = Route(tuple(placed["path"]), tuple(placed["query"]), model is not None)
    return _retarget(schema), route


@dataclass(frozen=True)
class Tool:
    """A tool as served: its spec, the input schema and where its arguments go."""

    spec: ToolSpec
    input_schema: dict[str, Any]
    route: Route


@dataclass(frozen=True)
class Catalog:
    """The tools an API offers: those whose operation its OpenAPI document has (a server
    that predates a route simply lacks that tool; an operation a tool cannot take is an
    error, never a tool left out in silence)."""

    tools: dict[str, Tool]

    @classmethod
    def from_openapi(cls, openapi: Mapping[str, Any]) -> Catalog:
        tools = {}
        for spec in TOOLS:
            try:
                schema, route = input_schema(openapi, spec)
            except MissingOperation:
                continue
            tools[spec.name] = Tool(spec, schema, route)
        return cls(tools)


class ArgumentError(ValueError):
    """Arguments that cannot become the tool's request (unknown or missing ones)."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, Any]
    body: dict[str, Any] | None


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_query_value(v) for v in value]
    return value


def request_of(tool: Tool, arguments: Mapping[str, Any]) -> Request:
    """The REST request for a call: path parameters into the path (percent-encoded, so an id
    never reaches another route), query parameters into the query, the rest into the body.
    Only the arguments given are sent, so the API's defaults (and PATCH's "unset") apply."""
    known = tool.input_schema["properties"]
    unknown = sorted(name for name in arguments if name not in known)
    if unknown:
        raise ArgumentError(
            f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"{tool.spec.name} takes {', '.join(sorted(known)) or 'no arguments'}"
        )
    path = tool.spec.path
    for name in tool.route.path_params:
        value = arguments.get(name)
        if value is None or value == "":
            raise ArgumentError(f"missing argument {name}")
        if str(value) in (".", ".."):  # a URL would fold it into the path before it
            raise ArgumentError(f"{name} must be an id, not {value!r}")
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    query = {k: _query_value(v) for k, v in tool.spec.fixed.items()}
    for name in tool.route.query_params:
        if arguments.get(name) is not None:
            query[name] = _query_value(arguments[name])
    body = None
    if tool.route.body:
        taken = set(tool.route.path_params) | set(tool.route.query_params)
        body = {k: v for k, v in arguments.items() if k not in taken}
    return Request(tool.spec.method, path, query, body)
