"""Tasks: create, read, update, delete and the lifecycle actions."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder

from ordinaut import events, tracing
from ordinaut.api.contract import errors
from ordinaut.api.deps import Deps, Page, Principal, get_deps, id_of, require
from ordinaut.api.strict import JSONRoute, utc_instant
from ordinaut.api.tenancy import OWNER_QUERY, owner_filter
from ordinaut.api.tooling import tool_registry
from ordinaut.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    LimitExceeded,
    RateLimited,
    ValidationFailed,
)
from ordinaut.models import (
    FireTimes,
    PreviewIn,
    RunQueued,
    SnoozeIn,
    TaskCreate,
    TaskListItem,
    TaskOut,
    TaskPatch,
    ValidateIn,
    ValidateOut,
    page,
)
from ordinaut.pipeline import PipelineLimits, compile_payload, dry_run
from ordinaut.pipeline.context import iso_utc
from ordinaut.pipeline.offload import off_loop
from ordinaut.scheduler import materialize_due_task
from ordinaut.slots import stored_schedule
from ordinaut.store import audit, idempotency, outbox, tasks, work
from ordinaut.store.db import Connection
from ordinaut.store.quota import RunQuota
from ordinaut.store.rows import SlotTask
from ordinaut.taskdefs import SCHEDULE_FIELDS, first_fire, prepare
from ordinaut.triggers import main_payload, pipeline_parts
from ordinaut.vocabulary import TIME_KINDS, ScheduleKind, TaskStatus

router = APIRouter(tags=["tasks"], route_class=JSONRoute)

TASK_READ = Depends(require("tasks:read"))
TASK_WRITE = Depends(require("tasks:write"))
TaskId = Annotated[UUID, Path(description="The task's id.")]
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


def _check_tool_scopes(
    payload: dict[str, Any], who: Principal, request: Request, deps: Deps
) -> None:
    """403 when the pipeline uses a tool needing a scope the caller lacks (event.publish...)."""
    scopes: set[str] = set()
    for part in pipeline_parts(payload):  # the pipeline, and a condition task's check
        compiled = compile_payload(
            part,
            registry=tool_registry(request),
            limits=PipelineLimits.from_settings(deps.settings),
        )
        scopes |= compiled.scopes
    missing = sorted(scope for scope in scopes if not who.has(scope))
    if missing:
        raise Forbidden(
            f"the pipeline uses tools that need scopes this agent lacks: {', '.join(missing)}",
            {"required_scopes": missing},
        )


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return TaskOut.model_validate(row).model_dump(mode="json")


async def _record(
    conn: Connection,
    request: Request,
    who: Principal,
    action: str,
    task: dict[str, Any],
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Audit row + outbox event for one task mutation, inside its transaction."""
    await audit.record(
        conn,
        actor_id=who.agent_id,
        action=action,
        subject_type="task",
        subject_id=task["id"],
        now=now,
        details=details,
        request_id=id_of(request),
    )
    await outbox.append(
        conn,
        [
            outbox.OutboxEvent(
                event_type=action,
                tenant_id=who.agent_id,
                subject_id=task["id"],
                payload={"task_id": str(task["id"]), "status": task["status"], **(details or {})},
            )
        ],
        now=now,
    )


@router.post(
    "/tasks",
    status_code=201,
    response_model=TaskOut,
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
async def create_task(
    body: TaskCreate,
    request: Request,
    response: Response,
    who: Principal = TASK_WRITE,
    deps: Deps = Depends(get_deps),
    idempotency_key_header: str | None = Header(
        default=None,
        alias="Idempotency-Key",
        description="1-200 characters; a retried request with the same key and body returns "
        "the first response instead of creating a second task (409 with another body).",
    ),
) -> Any:
    """Create a task; with ``Idempotency-Key`` a retried request returns the first response.

    409 when the key was used with another body, or `dedupe_key` matches a task created
    inside its `dedupe_window_seconds`; 422 when the agent owns `max_tasks_per_agent` tasks."""
    now = deps.clock.now()
    fields = body.model_dump(mode="json")
    if idempotency_key_header is not None and not 1 <= len(idempotency_key_header) <= 200:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 200 characters",
            [{"field": "header.Idempotency-Key", "message": "1 to 200 characters"}],
        )
    request_hash = hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).digest()
    prepared = prepare(fields, now=now, settings=deps.settings, registry=tool_registry(request))
    _check_tool_scopes(prepared["payload"], who, request, deps)
    expired = now - timedelta(seconds=deps.settings.idempotency_ttl_s)
    pool = await deps.pool()
    async with pool.acquire() as conn:
        for _ in range(2):
            try:
                async with conn.transaction():
                    if idempotency_key_header:
                        seen = await idempotency.lookup(
                            conn, who.agent_id, idempotency_key_header, expired_before=expired
                        )
                        if seen is not None:
                            return _replay(seen, request_hash, response)
                    out = await _insert(conn, request, who, prepared, now, deps)
                    if idempotency_key_header:
                        await idempotency.remember(
                            conn,
                            who.agent_id,
                            idempotency_key_header,
                            request_hash=request_hash,
                            status_code=201,
                            response=out,
                            now=now,
                            expired_before=expired,
                        )
                break
            except asyncpg.UniqueViolationError:
                # A concurrent request with the same key committed first: replay it.
                if not idempotency_key_header:
                    raise
        else:
            raise Conflict("concurrent requests with the same Idempotency-Key", {})
    due = prepared["next_run_at"]
    if deps.waker is not None and due is not None and due <= now:
        # Lambda: a task due now (a one-shot for now) gets its slot at once and a worker,
        # instead of waiting up to a minute for the next tick.
        if await materialize_due_task(pool, deps.settings, deps.clock, uuid.UUID(out["id"])):
            await deps.wake_workers()
    return out


def _replay(seen: tuple[bytes, int, Any], request_hash: bytes, response: Response) -> Any:
    stored_hash, status_code, body = seen
    if stored_hash != request_hash:
        raise Conflict(
            "Idempotency-Key was already used with a different request body",
            {"header": "Idempotency-Key"},
        )
    response.status_code = status_code
    response.headers["Idempotent-Replayed"] = "true"
    return body


async def _insert(
    conn: Connection,
    request: Request,
    who: Principal,
    prepared: dict[str, Any],
    now: datetime,
    deps: Deps,
) -> dict[str, Any]:
    if await tasks.count_owned(conn, who.agent_id) >= deps.settings.max_tasks_per_agent:
        raise LimitExceeded(
            f"an agent may own at most {deps.settings.max_tasks_per_agent} tasks",
            [{"field": "tasks", "limit": "max_tasks_per_agent"}],
        )
    if prepared.get("dedupe_key") and prepared.get("dedupe_window_seconds"):
        since = now - timedelta(seconds=prepared["dedupe_window_seconds"])
        dup = await tasks.find_recent_duplicate(conn, who.agent_id, prepared["dedupe_key"], since)
        if dup is not None:
            raise Conflict(
                "a task with this dedupe_key was created inside its dedupe window",
                {"existing_task_id": str(dup["id"]), "dedupe_key": prepared["dedupe_key"]},
            )
    prepared = {**prepared, "status": "active", "snoozed_until": None}
    row = await tasks.insert_task(
        conn, task_id=uuid.uuid4(), owner_id=who.agent_id, task=prepared, now=now
    )
    await _record(conn, request, who, events.TASK_CREATED, row, now)
    return _out(row)


@router.get("/tasks", response_model=Page[TaskListItem])
async def list_tasks(
    who: Principal = TASK_READ,
    deps: Deps = Depends(get_deps),
    status: TaskStatus | None = Query(None, description="Only tasks in this state."),
    schedule_kind: ScheduleKind | None = Query(
        None, description="Only tasks with this kind of schedule."
    ),
    limit: int = Query(50, ge=1, le=500, description="Page size."),
    offset: int = Query(0, ge=0, le=1_000_000, description="Items to skip."),
    owner: str | None = OWNER_QUERY,
    search: str | None = Query(
        None,
        max_length=200,
        description="Only tasks whose title contains this text (case-insensitive).",
    ),
) -> dict[str, Any]:
    """The caller's tasks, newest first, in the list envelope; admins read another agent's
    (``owner=ID``) or every agent's (``owner=*``)."""
    owner_id = owner_filter(who, owner)
    pool = await deps.pool()
    rows, total = await tasks.list_tasks(
        pool,
        owner_id,
        status=status,
        kind=schedule_kind,
        limit=limit,
        offset=offset,
        search=search,
        failures_since=deps.clock.now() - timedelta(days=1),
    )
    items = [TaskListItem.model_validate(r).model_dump(mode="json") for r in rows]
    return page(items, total, limit, offset)


@router.get("/tasks/{task_id}", response_model=TaskOut)
async def get_task(
    task_id: TaskId, who: Principal = TASK_READ, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """One task the caller owns."""
    pool = await deps.pool()
    return _out(await tasks.get_task(pool, task_id, who.agent_id))


async def _update(
    request: Request,
    task_id: UUID,
    changes: dict[str, Any],
    who: Principal,
    deps: Deps,
) -> dict[str, Any]:
    now = deps.clock.now()
    pool = await deps.pool()
    async with pool.acquire() as conn, conn.transaction():
        current = await tasks.get_task(conn, task_id, who.agent_id, lock=True)
        if current["status"] == "canceled":
            raise InvalidTransition("a canceled task cannot be updated", {"status": "canceled"})
        merged = {**current, **changes}
        schedule_changed = any(merged[f] != current[f] for f in SCHEDULE_FIELDS)
        fields = {k: merged[k] for k in TaskCreate.model_fields}
        prepared = prepare(
            fields,
            now=now,
            settings=deps.settings,
            registry=tool_registry(request),
            stored=None
            if schedule_changed
            else stored_schedule(
                current["schedule_kind"],
                current["schedule_expr"],
                current["timezone"],
                current["dtstart"],
            ),
        )
        _check_tool_scopes(prepared["payload"], who, request, deps)
        task = {**current, **prepared}
        if schedule_changed:
            await work.drop_pending(conn, task_id, triggers=["schedule", "condition"])
            if current["status"] == "paused":
                task["next_run_at"] = None
            elif task["next_run_at"] is None and prepared["schedule_kind"] in TIME_KINDS:
                task["status"] = "completed"
            elif current["status"] == "completed":
                task["status"] = "active"
        else:
            task["next_run_at"] = current["next_run_at"]
            task["dtstart"] = current["dtstart"]
        row = await tasks.update_task(conn, owner_id=who.agent_id, task=task, now=now)
        await _record(
            conn,
            request,
            who,
            events.TASK_UPDATED,
            row,
            now,
            {"fields": sorted(k for k in changes if changes[k] != current.get(k))},
        )
    return _out(row)


@router.put("/tasks/{task_id}", response_model=TaskOut, responses=errors(409))
async def replace_task(
    task_id: TaskId,
    body: TaskCreate,
    request: Request,
    who: Principal = TASK_WRITE,
    deps: Deps = Depends(get_deps),
) -> dict[str, Any]:
    """Replace every field; pending runs follow a changed schedule (409 for a canceled task)."""
    return await _update(request, task_id, body.model_dump(mode="json"), who, deps)


@router.patch("/tasks/{task_id}", response_model=TaskOut, responses=errors(409))
async def patch_task(
    task_id: TaskId,
    body: TaskPatch,
    request: Request,
    who: Principal = TASK_WRITE,
    deps: Deps = Depends(get_deps),
) -> dict[str, Any]:
    """Change only the fields sent (409 for a canceled task)."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    nulls = [k for k, v in changes.items() if v is None and k not in TaskPatch.nullable()]
    if nulls:
        raise ValidationFailed(
            "these fields cannot be null",
            [{"field": k, "message": "may not be null"} for k in nulls],
        )
    return await _update(request, task_id, changes, who, deps)


@router.delete("/tasks/{task_id}", status_code=204, response_class=Response)
async def delete_task(
    task_id: TaskId, request: Request, who: Principal = TASK_WRITE, deps: Deps = Depends(get_deps)
) -> Response:
    """Delete the task with its runs."""
    now = deps.clock.now()
    pool = await deps.pool()
    async with pool.acquire() as conn, conn.transaction():
        current = await tasks.get_task(conn, task_id, who.agent_id, lock=True)
        await tasks.delete_task(conn, task_id, who.agent_id)
        await _record(conn, request, who, events.TASK_DELETED, current, now)
    return Response(status_code=204)


async def _transition(
    request: Request,
    task_id: UUID,
    who: Principal,
    deps: Deps,
    *,
    action: str,
    verb: str,
    allowed_from: tuple[str, ...],
    to: str,
) -> dict[str, Any]:
    now = deps.clock.now()
    pool = await deps.pool()
    async with pool.acquire() as conn, conn.transaction():
        current = await tasks.get_task(conn, task_id, who.agent_id, lock=True)
        if current["status"] not in allowed_from:
            raise InvalidTransition(
                f"cannot {verb} a task that is {current['status']}",
                {"status": current["status"], "allowed_from": list(allowed_from)},
            )
        task = dict(current, status=to)
        if to == "paused":
            task["next_run_at"] = None
            await work.drop_pending(conn, task_id, triggers=["schedule", "condition"])
        elif to == "canceled":
            task["next_run_at"] = None
            await work.cancel_queued(conn, task_id, now=now, reason="task canceled")
        elif to == "active":
            schedule = stored_schedule(
                current["schedule_kind"],
                current["schedule_expr"],
                current["timezone"],
                current["dtstart"],
            )
            task["next_run_at"] = first_fire(schedule, now)
            if task["next_run_at"] is None and schedule.kind in TIME_KINDS:
                task["status"] = "completed"
        row = await tasks.update_task(conn, owner_id=who.agent_id, task=task, now=now)
        await _record(conn, request, who, action, row, now)
    return _out(row)


@router.post("/tasks/{task_id}/pause", response_model=TaskOut, responses=errors(409))
async def pause_task(
    task_id: TaskId, request: Request, who: Principal = TASK_WRITE, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Stop scheduling new runs; queued scheduled runs are dropped (409 unless active)."""
    return await _transition(
        request,
        task_id,
        who,
        deps,
        action=events.TASK_PAUSED,
        verb="pause",
        allowed_from=("active",),
        to="paused",
    )


@router.post("/tasks/{task_id}/resume", response_model=TaskOut, responses=errors(409))
async def resume_task(
    task_id: TaskId, request: Request, who: Principal = TASK_WRITE, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Schedule again from now on (409 unless paused)."""
    return await _transition(
        request,
        task_id,
        who,
        deps,
        action=events.TASK_RESUMED,
        verb="resume",
        allowed_from=("paused",),
        to="active",
    )


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut, responses=errors(409))
async def cancel_task(
    task_id: TaskId, request: Request, who: Principal = TASK_WRITE, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """End the task for good; queued runs are canceled (409 when already canceled)."""
    return await _transition(
        request,
        task_id,
        who,
        deps,
        action=events.TASK_CANCELED,
        verb="cancel",
        allowed_from=("active", "paused", "completed"),
        to="canceled",
    )


@router.post("/tasks/{task_id}/snooze", response_model=TaskOut, responses=errors(409))
async def snooze_task(
    task_id: TaskId,
    body: SnoozeIn,
    request: Request,
    who: Principal = TASK_WRITE,
    deps: Deps = Depends(get_deps),
) -> dict[str, Any]:
    """Postpone pending work by ``delay_seconds``; slots due before then start at its end."""
    now = deps.clock.now()
    pool = await deps.pool()
    async with pool.acquire() as conn, conn.transaction():
        current = await tasks.get_task(conn, task_id, who.agent_id, lock=True)
        if current["status"] not in ("active", "paused"):
            raise InvalidTransition(
                f"cannot snooze a task that is {current['status']}", {"status": current["status"]}
            )
        shifted = await work.snooze_queued(conn, task_id, now=now, delay_s=body.delay_seconds)
        task = dict(current, snoozed_until=now + timedelta(seconds=body.delay_seconds))
        row = await tasks.update_task(conn, owner_id=who.agent_id, task=task, now=now)
        await _record(
            conn,
            request,
            who,
            events.TASK_SNOOZED,
            row,
            now,
            {"delay_seconds": body.delay_seconds, "reason": body.reason, "shifted_runs": shifted},
        )
    return _out(row)


@router.post(
    "/tasks/{task_id}/run_now",
    status_code=202,
    response_model=RunQueued,
    responses={**errors(409), 202: {"description": "The run is queued.", "links": RUN_LINKS}},
)
async def run_now(
    task_id: TaskId, request: Request, who: Principal = TASK_WRITE, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Queue one run of the task now, whatever its schedule (409 for a canceled task)."""
    now = deps.clock.now()
    pool = await deps.pool()
    async with pool.acquire() as conn:
        async with conn.transaction():
            current = await tasks.get_task(conn, task_id, who.agent_id, lock=True)
            if current["status"] == "canceled":
                raise InvalidTransition("a canceled task cannot run", {"status": "canceled"})
            limit = deps.settings.max_runs_per_minute_per_agent
            quota = RunQuota(limit, now)
            if not (await quota.allow(conn, {who.agent_id: 1}))[who.agent_id]:
                raise RateLimited(
                    f"this agent queued {limit} runs this minute (max_runs_per_minute_per_agent)",
                    {
                        "limit": "max_runs_per_minute_per_agent",
                        "max": limit,
                        "retry_after_s": quota.retry_after_s,
                    },
                )
            run_id = uuid.uuid4()
            slot = f"manual:{run_id}"
            await work.materialize(
                conn,
                [
                    work.NewSlot.for_task(
                        SlotTask.from_row(current),
                        run_id=run_id,
                        owner_id=who.agent_id,
                        slot=slot,
                        trigger="run_now",
                        scheduled_for=now,
                        trace_context=tracing.current_traceparent(),
                    )
                ],
                now=now,
            )
            await audit.record(
                conn,
                actor_id=who.agent_id,
                action="task.run_now",
                subject_type="task",
                subject_id=task_id,
                now=now,
                details={"run_id": str(run_id)},
                request_id=id_of(request),
            )
            await quota.charge(conn)  # last: see store/quota.py
        await work.notify_work(conn)
    await deps.wake_workers()
    return {"run_id": str(run_id), "task_id": str(task_id), "scheduled_for": iso_utc(now)}


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
    who: Principal = TASK_READ,
    deps: Deps = Depends(get_deps),
    frm: datetime | None = Query(
        None, alias="from", description="Fire times strictly after this (default: now)."
    ),
    until: datetime | None = Query(None, description="Fire times before this."),
    limit: int = Query(10, ge=1, le=1000, description="At most this many."),
) -> dict[str, Any]:
    """Fire times in UTC from the same code the scheduler uses."""
    now = deps.clock.now()
    pool = await deps.pool()
    task = await tasks.get_task(pool, task_id, who.agent_id)
    start, end = _window(frm, until, now)
    if task["schedule_kind"] in ("event", "condition"):
        return {"fire_times": [], "schedule_kind": task["schedule_kind"]}
    schedule = stored_schedule(
        task["schedule_kind"], task["schedule_expr"], task["timezone"], task["dtstart"]
    )
    times = schedule.fire_times(start, end, limit)
    return {"fire_times": [iso_utc(t) for t in times]}


@router.post("/schedules/preview", response_model=FireTimes, response_model_exclude_unset=True)
async def preview_schedule(
    body: PreviewIn, who: Principal = TASK_READ, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Fire times of a schedule that is not a task (yet)."""
    now = deps.clock.now()
    start, end = _window(body.from_, body.until, now)
    fields = body.model_dump()
    from ordinaut.taskdefs import build_schedule

    # A window that starts in the past previews the schedule as if written at its start: fire
    # times that all lie before now are listed, not refused as "never fires after now" (which
    # stays the answer for a window starting now, as for creating the task).
    as_of = min(start, now)
    schedule = build_schedule(fields, now=as_of, settings=deps.settings, dtstart=None)
    times = schedule.fire_times(start, end, body.limit)
    return {"fire_times": [iso_utc(t) for t in times], "timezone": schedule.timezone}


@router.post("/tasks/validate", response_model=ValidateOut, response_model_exclude_unset=True)
async def validate_task(
    body: ValidateIn, request: Request, who: Principal = TASK_READ, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Validate a whole task or a payload; ``dry_run`` renders each step without running it."""
    now = deps.clock.now()
    registry = tool_registry(request)
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
    return jsonable_encoder(result)
