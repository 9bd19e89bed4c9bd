"""Runs: history with filters, one run with its step results, stats, retry and cancel."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from ordinaut.api.deps import Deps, Principal, get_deps, request_id, require
from ordinaut.api.tenancy import OWNER_QUERY, acting_owner, owner_filter
from ordinaut.errors import NotFound, ValidationFailed
from ordinaut.models import RunOut, page
from ordinaut.store import audit, runs, tasks, work

router = APIRouter(tags=["runs"])

RUNS_READ = Depends(require("runs:read"))
TASKS_WRITE = Depends(require("tasks:write"))


def _out(row: dict[str, Any], *, steps: bool) -> dict[str, Any]:
    data = RunOut.model_validate(row).model_dump(mode="json")
    if not steps:
        data.pop("step_results", None)
    return data


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValidationFailed(
            f"{name} needs a UTC offset", [{"field": name, "message": "add Z or an offset"}]
        )
    return value


@router.get("/runs")
async def list_runs(
    who: Principal = RUNS_READ,
    deps: Deps = Depends(get_deps),
    task_id: UUID | None = None,
    status: Literal[
        "queued", "running", "succeeded", "failed", "dead_letter", "canceled", "skipped"
    ]
    | None = None,
    success: bool | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
    owner: str | None = OWNER_QUERY,
) -> dict[str, Any]:
    """The caller's runs; admins read another agent's (``owner=ID``) or every agent's
    (``owner=*``): ``status=dead_letter&owner=*`` is every dead letter."""
    owner_id = owner_filter(who, owner)
    pool = await deps.pool()
    rows, total = await runs.list_runs(
        pool,
        owner_id,
        task_id=task_id,
        status=status,
        success=success,
        start=_aware("start_time", start_time),
        end=_aware("end_time", end_time),
        limit=limit,
        offset=offset,
    )
    return page([_out(r, steps=False) for r in rows], total, limit, offset)


@router.get("/runs/stats/summary")
async def runs_summary(
    who: Principal = RUNS_READ, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    now = deps.clock.now()
    pool = await deps.pool()
    return await runs.summary(pool, who.agent_id, since=now - timedelta(hours=24))


@router.get("/runs/task/{task_id}/latest")
async def latest_run(
    task_id: UUID, who: Principal = RUNS_READ, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    pool = await deps.pool()
    await tasks.get_task(pool, task_id, who.agent_id)
    row = await runs.latest_run(pool, task_id, who.agent_id)
    if row is None:
        raise NotFound(f"task {task_id} has no runs yet", {"task_id": str(task_id)})
    return _out(row, steps=True)


@router.get("/runs/task/{task_id}/stats")
async def task_stats(
    task_id: UUID, who: Principal = RUNS_READ, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    pool = await deps.pool()
    await tasks.get_task(pool, task_id, who.agent_id)
    stats = await runs.task_stats(pool, task_id, who.agent_id)
    return {"task_id": str(task_id), **stats}


@router.get("/runs/{run_id}")
async def get_run(
    run_id: UUID,
    who: Principal = RUNS_READ,
    deps: Deps = Depends(get_deps),
    owner: str | None = OWNER_QUERY,
) -> dict[str, Any]:
    pool = await deps.pool()
    return _out(await runs.get_run(pool, run_id, owner_filter(who, owner)), steps=True)


@router.post("/runs/{run_id}/retry", status_code=202)
async def retry_run(
    run_id: UUID, request: Request, who: Principal = TASKS_WRITE, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Requeue a failed or dead-lettered run now, with a fresh retry budget (admins: any
    agent's run)."""
    return await _act(run_id, request, who, deps, "run.retry")


@router.post("/runs/{run_id}/cancel")
async def cancel_run(
    run_id: UUID, request: Request, who: Principal = TASKS_WRITE, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Cancel a queued or running run; a running attempt's result is discarded (admins: any
    agent's run)."""
    return await _act(run_id, request, who, deps, "run.cancel")


async def _act(
    run_id: UUID, request: Request, who: Principal, deps: Deps, action: str
) -> dict[str, Any]:
    now = deps.clock.now()
    pool = await deps.pool()
    async with pool.acquire() as conn:
        async with conn.transaction():
            owner_id = who.agent_id
            if who.is_admin:
                owner_id = acting_owner(who, await runs.owner_of(conn, run_id))
            if action == "run.retry":
                await runs.retry_run(conn, run_id, owner_id, now)
            else:
                await runs.cancel_run(conn, run_id, owner_id, now)
            await audit.record(
                conn,
                actor_id=who.agent_id,
                action=action,
                subject_type="run",
                subject_id=run_id,
                now=now,
                request_id=request_id(request),
                owner_id=owner_id,
            )
        if action == "run.retry":
            await work.notify_work(conn)
        row = await runs.get_run(conn, run_id, owner_id)
    return _out(row, steps=False)
