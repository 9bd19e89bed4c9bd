"""Runs: history with filters, one run with its step results, stats, retry and cancel."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request

from ordinaut.api.contract import errors
from ordinaut.api.deps import Deps, Page, Principal, get_deps, id_of, require
from ordinaut.api.strict import JSONRoute, utc_instant
from ordinaut.api.tenancy import OWNER_QUERY, acting_owner, owner_filter
from ordinaut.errors import NotFound
from ordinaut.models import RunOut, RunsOverview, RunSummary, TaskStats, page
from ordinaut.store import audit, runs, tasks, work
from ordinaut.vocabulary import RunStatus

router = APIRouter(tags=["runs"], route_class=JSONRoute)

RUNS_READ = Depends(require("runs:read"))
TASKS_WRITE = Depends(require("tasks:write"))
RunId = Annotated[UUID, Path(description="The run's id.")]
TaskId = Annotated[UUID, Path(description="The task's id.")]


def _out(row: dict[str, Any], *, steps: bool) -> dict[str, Any]:
    data = RunOut.model_validate(row).model_dump(mode="json")
    if not steps:
        data.pop("step_results", None)
    return data


@router.get("/runs", response_model=Page[RunSummary])
async def list_runs(
    who: Principal = RUNS_READ,
    deps: Deps = Depends(get_deps),
    task_id: UUID | None = Query(None, description="Only runs of this task."),
    status: RunStatus | None = Query(
        None, description="Only runs in this state (`dead_letter`: the runs to look at)."
    ),
    success: bool | None = Query(
        None, description="true: succeeded runs; false: runs that ended without success."
    ),
    start_time: datetime | None = Query(
        None, description="Runs scheduled at or after this instant (with an offset)."
    ),
    end_time: datetime | None = Query(
        None, description="Runs scheduled before this instant (with an offset)."
    ),
    limit: int = Query(50, ge=1, le=500, description="Page size."),
    offset: int = Query(0, ge=0, le=1_000_000, description="Items to skip."),
    owner: str | None = OWNER_QUERY,
) -> dict[str, Any]:
    """The caller's runs, newest first, without step results, in the list envelope; admins
    read another agent's (``owner=ID``) or every agent's (``owner=*``): with
    ``status=dead_letter&owner=*``, every dead letter."""
    owner_id = owner_filter(who, owner)
    pool = await deps.pool()
    rows, total = await runs.list_runs(
        pool,
        owner_id,
        task_id=task_id,
        status=status,
        success=success,
        start=utc_instant("start_time", start_time),
        end=utc_instant("end_time", end_time),
        limit=limit,
        offset=offset,
    )
    return page([_out(r, steps=False) for r in rows], total, limit, offset)


@router.get("/runs/stats/summary", response_model=RunsOverview)
async def runs_summary(
    who: Principal = RUNS_READ, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Counts of the caller's runs (all time and the last 24 hours) and tasks."""
    now = deps.clock.now()
    pool = await deps.pool()
    return await runs.summary(pool, who.agent_id, since=now - timedelta(hours=24))


@router.get("/runs/task/{task_id}/latest", response_model=RunOut)
async def latest_run(
    task_id: TaskId, who: Principal = RUNS_READ, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """The task's most recent run with its step results (404 before its first run)."""
    pool = await deps.pool()
    await tasks.get_task(pool, task_id, who.agent_id)
    row = await runs.latest_run(pool, task_id, who.agent_id)
    if row is None:
        raise NotFound(f"task {task_id} has no runs yet", {"task_id": str(task_id)})
    return _out(row, steps=True)


@router.get("/runs/task/{task_id}/stats", response_model=TaskStats)
async def task_stats(
    task_id: TaskId, who: Principal = RUNS_READ, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Counts, durations and success rate of the task's runs."""
    pool = await deps.pool()
    await tasks.get_task(pool, task_id, who.agent_id)
    stats = await runs.task_stats(pool, task_id, who.agent_id)
    return {"task_id": str(task_id), **stats}


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(
    run_id: RunId,
    who: Principal = RUNS_READ,
    deps: Deps = Depends(get_deps),
    owner: str | None = OWNER_QUERY,
) -> dict[str, Any]:
    """One run with the record of each step (inputs and outputs, secrets masked); admins read
    any agent's with ``owner=*``."""
    pool = await deps.pool()
    return _out(await runs.get_run(pool, run_id, owner_filter(who, owner)), steps=True)


@router.post(
    "/runs/{run_id}/retry", status_code=202, response_model=RunSummary, responses=errors(409)
)
async def retry_run(
    run_id: RunId, request: Request, who: Principal = TASKS_WRITE, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Requeue a dead-lettered (or failed) run now, with a fresh retry budget (409 from any
    other state; admins: any agent's run)."""
    return await _act(run_id, request, who, deps, "run.retry")


@router.post("/runs/{run_id}/cancel", response_model=RunSummary, responses=errors(409))
async def cancel_run(
    run_id: RunId, request: Request, who: Principal = TASKS_WRITE, deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Cancel a queued or running run; a running attempt's result is discarded (409 from any
    other state; admins: any agent's run)."""
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
                request_id=id_of(request),
                owner_id=owner_id,
            )
        if action == "run.retry":
            await work.notify_work(conn)
        row = await runs.get_run(conn, run_id, owner_id)
    if action == "run.retry":
        await deps.wake_workers()
    return _out(row, steps=False)
