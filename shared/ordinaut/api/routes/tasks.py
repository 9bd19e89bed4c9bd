"""Tasks over HTTP: create, read, update, delete and the lifecycle actions.

The state machine and its transitions live in ``ordinaut.lifecycle``; a route here validates the
request, calls one of its functions with the request's one reading of the clock, and shapes
the answer."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import orjson
from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.encoders import jsonable_encoder

from ordinaut import lifecycle
from ordinaut.api import cursor as keyset
from ordinaut.api.contract import errors
from ordinaut.api.deps import (
    BEARER_SECURITY,
    Bearer,
    Deps,
    DepsDep,
    Now,
    PagingDep,
    Principal,
    RequestId,
    id_of,
    require,
    require_bearer,
)
from ordinaut.api.schemas import (
    MAX_LABELS,
    FireTimes,
    KeysetPage,
    PreviewIn,
    RunQueued,
    SnoozeIn,
    TaskCreate,
    TaskListItem,
    TaskOut,
    TaskPatch,
    ValidateIn,
    ValidateOut,
    label_filter,
)
from ordinaut.api.strict import JSONRoute, utc_instant
from ordinaut.api.tenancy import Cursor, Owner, Total, owner_filter
from ordinaut.api.tooling import Registry, tool_registry
from ordinaut.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ordinaut.pipeline import PipelineLimits, dry_run
from ordinaut.pipeline.offload import off_loop
from ordinaut.pipeline.tools import ToolRegistry
from ordinaut.scheduler import materialize_due_task
from ordinaut.schedules import Schedule
from ordinaut.slots import stored_schedule
from ordinaut.store import idempotency, tasks
from ordinaut.store.agents import Grant
from ordinaut.taskdefs import build_schedule, prepare, prepare_scoped
from ordinaut.triggers import main_payload
from ordinaut.vocabulary import ScheduleKind, TaskStatus

router = APIRouter(tags=["tasks"], route_class=JSONRoute)

Reader = Annotated[Principal, Depends(require("tasks:read"))]
ReaderToken = Annotated[Bearer, Depends(require_bearer("tasks:read"))]
WriterToken = Annotated[Bearer, Depends(require_bearer("tasks:write"))]
Writer = Annotated[Principal, Depends(require("tasks:write"))]
TaskId = Annotated[UUID, Path(description="The task's id.")]
# POST /tasks reads its Idempotency-Key header itself (a header parameter FastAPI resolves
# cost ~3 % of a create's CPU, for a header most creates do not send); the operation declares
# it for the OpenAPI document exactly as FastAPI declared the ``str | None`` Header parameter.
IDEMPOTENCY_KEY = "Idempotency-Key"
_IDEMPOTENCY_KEY_DOC = (
    "1-200 characters; a retried request with the same key and body returns the first "
    "response instead of creating a second task (409 with another body)."
)
IDEMPOTENCY_KEY_PARAMETER = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "schema": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": _IDEMPOTENCY_KEY_DOC,
        "title": IDEMPOTENCY_KEY,
    },
    "description": _IDEMPOTENCY_KEY_DOC,
}
# OpenAPI links: what a client (or a stateful test) can do next with the id in the response.
_TASK_ID = {"task_id": "$response.body#/id"}
TASK_LINKS = {
    name: {"operationId": op, "parameters": _TASK_ID, "description": text}
    for name, op, text in (
        ("GetTask", "get_task_tasks__task_id__get", "Read the task."),
        ("PatchTask", "patch_task_tasks__task_id__patch", "Change some fields."),
        ("PauseTask", "pause_task_tasks__task_id__pause_post", "Pause it."),
        ("RunTaskNow", "run_now_tasks__task_id__run_now_post", "Queue a run now."),
        ("PreviewTask", "preview_task_tasks__task_id__preview_get", "Its next fire times."),
        ("LatestRun", "latest_run_runs_task__task_id__latest_get", "Its latest run."),
        ("TaskStats", "task_stats_runs_task__task_id__stats_get", "Its run statistics."),
        ("DeleteTask", "delete_task_tasks__task_id__delete", "Delete it."),
    )
}
RUN_LINKS = {
    "GetRun": {
        "operationId": "get_run_runs__run_id__get",
        "parameters": {"run_id": "$response.body#/run_id"},
        "description": "Follow the queued run.",
    },
    "CancelRun": {
        "operationId": "cancel_run_runs__run_id__cancel_post",
        "parameters": {"run_id": "$response.body#/run_id"},
        "description": "Cancel it.",
    },
}


def _check_tool_scopes(scopes: frozenset[str], who: Principal) -> None:
    """403 when the pipeline uses a tool needing a scope the caller lacks (event.publish...).

    ``scopes``: what the tools of every pipeline of the task (the pipeline, and a condition
    task's check) need, from ``taskdefs.prepare_scoped``, which compiled them once."""
    missing = sorted(scope for scope in scopes if not who.has(scope))
    if missing:
        raise Forbidden(
            f"the pipeline uses tools that need scopes this agent lacks: {', '.join(missing)}",
            {"required_scopes": missing},
        )


def _out(row: dict[str, Any]) -> TaskOut:
    return TaskOut.model_validate(row)


@router.post(
    "/tasks",
    status_code=201,
    response_model=TaskOut,
    openapi_extra={**BEARER_SECURITY, "parameters": [IDEMPOTENCY_KEY_PARAMETER]},
    responses={
        **errors(409),
        201: {"description": "The task, as stored.", "links": TASK_LINKS},
        200: {
            "model": TaskOut,
            "description": "A replay: this Idempotency-Key already created this task "
            "(`Idempotent-Replayed: true`).",
        },
    },
)
async def create_task(body: TaskCreate, bearer: WriterToken) -> TaskOut | Response:
    """Create a task; with ``Idempotency-Key`` a retried request returns the first response.

    409 when the key was used with another body, or `dedupe_key` matches a task created
    inside its `dedupe_window_seconds`; 422 when the agent owns `max_tasks_per_agent` tasks."""
    deps, now, rid = bearer.deps, bearer.now, id_of(bearer.request)
    idempotency_key_header = bearer.request.headers.get(IDEMPOTENCY_KEY)
    # An error raised before the token is checked (a 422 here) checks it first (api/errors.py):
    # 401 and 403 keep their precedence over what is wrong with the input.
    fields = body.model_dump(mode="json")
    if idempotency_key_header is not None and not 1 <= len(idempotency_key_header) <= 200:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 200 characters",
            [{"field": "header.Idempotency-Key", "message": "1 to 200 characters"}],
        )
    prepared, scopes = prepare_scoped(
        fields, now=now, settings=deps.settings, registry=tool_registry(bearer.request)
    )
    pool = await deps.pool()
    if not idempotency_key_header and not lifecycle.dedupes(prepared):
        # One statement checks the token, the scopes and the quota and writes the task, its
        # audit row and its event (lifecycle.create_granted): no connection held, one round trip.
        def admit(grant: Grant | None) -> None:
            _check_tool_scopes(scopes, bearer.admit(grant))

        row = await lifecycle.create_granted(
            pool,
            digest=bearer.digest,
            now=now,
            prepared=prepared,
            required=scopes | {bearer.scope},
            admit=admit,
            request_id=rid,
            max_tasks=deps.settings.max_tasks_per_agent,
        )
        out = _out(row)
        await _wake_if_due(out, prepared, now, pool, deps)
        return out
    who = await bearer.verify()
    _check_tool_scopes(scopes, who)
    actor = lifecycle.Actor(who.agent_id, rid)
    if not idempotency_key_header:
        # a dedupe key: lifecycle.create looks for the duplicate in a transaction of its own
        out = _out(
            await lifecycle.create(
                pool, actor, prepared, now, max_tasks=deps.settings.max_tasks_per_agent
            )
        )
        await _wake_if_due(out, prepared, now, pool, deps)
        return out
    # An Idempotency-Key (1 to 200 characters, checked above): the create and the key's record
    # in one transaction.
    request_hash = hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).digest()
    expired = now - timedelta(seconds=deps.settings.idempotency_ttl_s)
    async with pool.acquire() as conn:
        for _ in range(2):
            try:
                async with conn.transaction():
                    seen = await idempotency.lookup(
                        conn, who.agent_id, idempotency_key_header, expired_before=expired
                    )
                    if seen is not None:
                        return _replay(seen, request_hash)
                    row = await lifecycle.create(
                        conn, actor, prepared, now, max_tasks=deps.settings.max_tasks_per_agent
                    )
                    out = _out(row)
                    await idempotency.remember(
                        conn,
                        who.agent_id,
                        idempotency_key_header,
                        request_hash=request_hash,
                        status_code=201,
                        response=out.model_dump(mode="json"),
                        now=now,
                        expired_before=expired,
                    )
                break
            except asyncpg.UniqueViolationError:
                pass  # a concurrent request with the same key committed first: replay it
        else:
            raise Conflict("concurrent requests with the same Idempotency-Key", {})
    await _wake_if_due(out, prepared, now, pool, deps)
    return out


async def _wake_if_due(
    out: TaskOut, prepared: dict[str, Any], now: datetime, pool: asyncpg.Pool, deps: Deps
) -> None:
    due = prepared["next_run_at"]
    if deps.waker is None or due is None or due > now:
        return
    # Lambda: a task due now (a one-shot for now) gets its slot at once and a worker,
    # instead of waiting up to a minute for the next tick.
    if await materialize_due_task(pool, deps.settings, deps.clock, out.id):
        await deps.wake_workers()


def _replay(seen: tuple[bytes, int, Any], request_hash: bytes) -> Response:
    """The first response again (its status, ``Idempotent-Replayed: true``), as TaskOut."""
    stored_hash, status_code, body = seen
    if stored_hash != request_hash:
        raise Conflict(
            "Idempotency-Key was already used with a different request body",
            {"header": "Idempotency-Key"},
        )
    return Response(
        TaskOut.model_validate(body).model_dump_json(),
        status_code=status_code,
        headers={"Idempotent-Replayed": "true"},
        media_type="application/json",
    )


@router.get("/tasks", response_model=KeysetPage[TaskListItem])
async def list_tasks(
    who: Reader,
    deps: DepsDep,
    now: Now,
    paging: PagingDep,
    status: Annotated[
        TaskStatus | None,
        Query(description="Only tasks in this state."),
    ] = None,
    schedule_kind: Annotated[
        ScheduleKind | None,
        Query(description="Only tasks with this kind of schedule."),
    ] = None,
    owner: Owner = None,
    search: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Only tasks whose title contains this text (case-insensitive).",
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        Query(
            description="`key:value`: only tasks with this label; repeat it for tasks that "
            f"carry every one given (at most {MAX_LABELS}).",
        ),
    ] = None,
    cursor: Cursor = None,
    total: Total = True,
) -> dict[str, Any]:
    """The caller's tasks, newest first, in the list envelope; admins read another agent's
    (``owner=ID``) or every agent's (``owner=*``). Page with ``next_cursor`` (keyset: as fast
    deep in the list as at its start) or ``offset``; ``total=false`` skips the count."""
    labels = label_filter(label)
    owner_id = owner_filter(who, owner)
    query = ("tasks", owner_id, status, schedule_kind, search, tuple(sorted(labels)))
    secret = deps.settings.secrets_key
    pool = await deps.pool()
    rows, counted, more = await tasks.list_tasks(
        pool,
        owner_id,
        status=status,
        kind=schedule_kind,
        limit=paging.limit,
        offset=paging.offset,
        search=search,
        labels=labels,
        failures_since=now - timedelta(days=1),
        after=keyset.start_after(secret, cursor, paging.offset, query),
        count=total and cursor is None,
    )
    # plain rows: the response model validates and serializes the envelope once
    return keyset.page(
        rows,
        keyset.as_is,
        sort="created_at",
        total=counted,
        limit=paging.limit,
        offset=paging.offset,
        more=more,
        secret=secret,
        query=query,
    )


@router.get("/tasks/{task_id}", response_model=TaskOut, openapi_extra=BEARER_SECURITY)
async def get_task(task_id: TaskId, bearer: ReaderToken) -> TaskOut:
    """One task the caller owns."""
    pool = await bearer.deps.pool()
    grant, row = await tasks.get_task_granted(pool, bearer.digest, bearer.now, task_id)
    bearer.admit(grant)
    if row is None:
        raise NotFound(f"task {task_id} not found", {"task_id": str(task_id)})
    return _out(row)


async def _update(
    task_id: UUID,
    changes: dict[str, Any],
    who: Principal,
    deps: Deps,
    now: datetime,
    rid: str,
    registry: ToolRegistry,
) -> TaskOut:
    def validate(merged: dict[str, Any], stored: Schedule | None) -> dict[str, Any]:
        fields = {k: merged[k] for k in TaskCreate.model_fields}
        prepared, scopes = prepare_scoped(
            fields, now=now, settings=deps.settings, registry=registry, stored=stored
        )
        _check_tool_scopes(scopes, who)
        return prepared

    pool = await deps.pool()
    async with pool.acquire() as conn:
        row = await lifecycle.update(
            conn, task_id, lifecycle.Actor(who.agent_id, rid), changes, now, validate=validate
        )
    return _out(row)


@router.put("/tasks/{task_id}", response_model=TaskOut, responses=errors(409))
async def replace_task(
    task_id: TaskId,
    body: TaskCreate,
    who: Writer,
    deps: DepsDep,
    now: Now,
    rid: RequestId,
    registry: Registry,
) -> TaskOut:
    """Replace every field; pending runs follow a changed schedule (409 for a canceled task)."""
    return await _update(task_id, body.model_dump(mode="json"), who, deps, now, rid, registry)


@router.patch("/tasks/{task_id}", response_model=TaskOut, responses=errors(409))
async def patch_task(
    task_id: TaskId,
    body: TaskPatch,
    who: Writer,
    deps: DepsDep,
    now: Now,
    rid: RequestId,
    registry: Registry,
) -> TaskOut:
    """Change only the fields sent (409 for a canceled task)."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    nulls = [k for k, v in changes.items() if v is None and k not in TaskPatch.nullable()]
    if nulls:
        raise ValidationFailed(
            "these fields cannot be null",
            [{"field": k, "message": "may not be null"} for k in nulls],
        )
    return await _update(task_id, changes, who, deps, now, rid, registry)


@router.delete("/tasks/{task_id}", status_code=204, response_class=Response)
async def delete_task(
    task_id: TaskId, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> Response:
    """Delete the task with its runs."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        await lifecycle.delete(conn, task_id, lifecycle.Actor(who.agent_id, rid), now)
    return Response(status_code=204)


@router.post("/tasks/{task_id}/pause", response_model=TaskOut, responses=errors(409))
async def pause_task(
    task_id: TaskId, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> TaskOut:
    """Stop scheduling new runs; queued scheduled runs are dropped (409 unless active)."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        row = await lifecycle.pause(conn, task_id, lifecycle.Actor(who.agent_id, rid), now)
    return _out(row)


@router.post("/tasks/{task_id}/resume", response_model=TaskOut, responses=errors(409))
async def resume_task(
    task_id: TaskId, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> TaskOut:
    """Schedule again from now on (409 unless paused)."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        row = await lifecycle.resume(conn, task_id, lifecycle.Actor(who.agent_id, rid), now)
    return _out(row)


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut, responses=errors(409))
async def cancel_task(
    task_id: TaskId, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> TaskOut:
    """End the task for good; queued runs are canceled (409 when already canceled)."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        row = await lifecycle.cancel(conn, task_id, lifecycle.Actor(who.agent_id, rid), now)
    return _out(row)


@router.post("/tasks/{task_id}/snooze", response_model=TaskOut, responses=errors(409))
async def snooze_task(
    task_id: TaskId, body: SnoozeIn, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> TaskOut:
    """Postpone pending work by ``delay_seconds``; slots due before then start at its end."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        row = await lifecycle.snooze(
            conn,
            task_id,
            lifecycle.Actor(who.agent_id, rid),
            now,
            delay_seconds=body.delay_seconds,
            reason=body.reason,
        )
    return _out(row)


@router.post(
    "/tasks/{task_id}/run_now",
    status_code=202,
    response_model=RunQueued,
    responses={**errors(409), 202: {"description": "The run is queued.", "links": RUN_LINKS}},
)
async def run_now(
    task_id: TaskId, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> RunQueued:
    """Queue one run of the task now, whatever its schedule (409 for a canceled task)."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        run_id = await lifecycle.run_now(
            conn,
            task_id,
            lifecycle.Actor(who.agent_id, rid),
            now,
            runs_per_minute=deps.settings.max_runs_per_minute_per_agent,
        )
    await deps.wake_workers()
    return RunQueued(run_id=run_id, task_id=task_id, scheduled_for=now)


def _window(
    frm: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime | None]:
    start = utc_instant("from", frm, bounded=True) or now
    until = utc_instant("until", until)
    if until is not None and until <= start:
        raise ValidationFailed(
            "until must be after from", [{"field": "until", "message": "<= from"}]
        )
    return start, until


@router.get("/tasks/{task_id}/preview", response_model=FireTimes, response_model_exclude_unset=True)
async def preview_task(
    task_id: TaskId,
    who: Reader,
    deps: DepsDep,
    now: Now,
    frm: Annotated[
        datetime | None,
        Query(alias="from", description="Fire times strictly after this (default: now)."),
    ] = None,
    until: Annotated[datetime | None, Query(description="Fire times before this.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 10,
) -> FireTimes:
    """Fire times in UTC from the same code the scheduler uses."""
    pool = await deps.pool()
    task = await tasks.get_task(pool, task_id, who.agent_id)
    start, end = _window(frm, until, now)
    if task["schedule_kind"] in ("event", "condition"):
        return FireTimes(fire_times=[], schedule_kind=task["schedule_kind"])
    schedule = stored_schedule(
        task["schedule_kind"], task["schedule_expr"], task["timezone"], task["dtstart"]
    )
    return FireTimes(fire_times=schedule.fire_times(start, end, limit))


@router.post("/schedules/preview", response_model=FireTimes, response_model_exclude_unset=True)
async def preview_schedule(body: PreviewIn, who: Reader, deps: DepsDep, now: Now) -> FireTimes:
    """Fire times of a schedule that is not a task (yet)."""
    start, end = _window(body.from_, body.until, now)
    fields = body.model_dump()
    # A window that starts in the past previews the schedule as if written at its start: fire
    # times that all lie before now are listed, not refused as "never fires after now" (which
    # stays the answer for a window starting now, as for creating the task).
    as_of = min(start, now)
    schedule = build_schedule(fields, now=as_of, settings=deps.settings, dtstart=None)
    times = schedule.fire_times(start, end, body.limit)
    return FireTimes(fire_times=times, timezone=schedule.timezone)


@router.post("/tasks/validate", response_model=ValidateOut, response_model_exclude_unset=True)
async def validate_task(
    body: ValidateIn, who: Reader, deps: DepsDep, now: Now, registry: Registry
) -> ValidateOut:
    """Validate a whole task or a payload; ``dry_run`` renders each step without running it."""
    if body.task is None and body.payload is None:
        raise ValidationFailed(
            "send a task or a payload", [{"field": "task", "message": "task or payload required"}]
        )
    result: dict[str, Any] = {"valid": True}
    if body.task is not None:
        prepared = prepare(
            body.task.model_dump(mode="json"), now=now, settings=deps.settings, registry=registry
        )
        payload = prepared["payload"]
        result["next_run_at"] = prepared["next_run_at"]
    else:
        assert body.payload is not None
        prepared = prepare(
            {
                "schedule_kind": "event",
                "schedule_expr": "validate",
                "timezone": "UTC",
                "payload": body.payload.model_dump(mode="json"),
            },
            now=now,
            settings=deps.settings,
            registry=registry,
        )
        payload = prepared["payload"]
    result["payload"] = payload
    if body.dry_run:
        # evaluated off the event loop: an agent's heavy expression must not stall requests
        result["steps"] = await off_loop(
            dry_run,
            main_payload(payload),  # the pipeline without trigger fields (filter, check...)
            sample_params=body.sample_params or payload.get("params", {}),
            registry=registry,
            limits=PipelineLimits.from_settings(deps.settings),
            now=now,
        )
    # only the keys set here are sent (response_model_exclude_unset)
    return ValidateOut.model_validate(jsonable_encoder(result))
