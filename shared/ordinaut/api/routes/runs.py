"""Runs: history with filters, one run with its step results, stats, retry and cancel."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query

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
    require,
    require_bearer,
)
from ordinaut.api.schemas import (
    Attention,
    KeysetPage,
    RunAttempts,
    RunOut,
    RunsOverview,
    RunSummary,
    TaskStats,
)
from ordinaut.api.strict import JSONRoute, utc_instant
from ordinaut.api.tenancy import Cursor, Owner, Total, acting_owner, owner_filter
from ordinaut.errors import NotFound
from ordinaut.store import audit, notifications, runs, tasks, work
from ordinaut.vocabulary import RunStatus

router = APIRouter(tags=["runs"], route_class=JSONRoute)

Reader = Annotated[Principal, Depends(require("runs:read"))]
ReaderToken = Annotated[Bearer, Depends(require_bearer("runs:read"))]
Writer = Annotated[Principal, Depends(require("tasks:write"))]
RunId = Annotated[UUID, Path(description="The run's id.")]
TaskId = Annotated[UUID, Path(description="The task's id.")]


@router.get("/runs", response_model=KeysetPage[RunSummary], openapi_extra=BEARER_SECURITY)
async def list_runs(
    bearer: ReaderToken,
    paging: PagingDep,
    task_id: Annotated[UUID | None, Query(description="Only runs of this task.")] = None,
    status: Annotated[
        RunStatus | None,
        Query(description="Only runs in this state (`dead_letter`: the runs to look at)."),
    ] = None,
    success: Annotated[
        bool | None,
        Query(description="true: succeeded runs; false: runs that ended without success."),
    ] = None,
    start_time: Annotated[
        datetime | None,
        Query(description="Runs scheduled at or after this instant (with an offset)."),
    ] = None,
    end_time: Annotated[
        datetime | None, Query(description="Runs scheduled before this instant (with an offset).")
    ] = None,
    owner: Owner = None,
    cursor: Cursor = None,
    total: Total = True,
) -> dict[str, Any]:
    """The caller's runs, newest first, without step results, in the list envelope; admins
    read another agent's (``owner=ID``) or every agent's (``owner=*``): with
    ``status=dead_letter&owner=*``, every dead letter. Page with ``next_cursor`` (keyset: as
    fast deep in the list as at its start) or ``offset``; ``total=false`` skips the count."""
    start, end = utc_instant("start_time", start_time), utc_instant("end_time", end_time)
    deps = bearer.deps
    secret = deps.settings.secrets_key
    pool = await deps.pool()
    if owner is None:
        # The caller's own runs (the common read): the token is checked in the page's own
        # statement. The cursor names where the page starts; whether it was issued for this
        # listing is checked before anything read is used, once the caller is known.
        grant, rows, more = await runs.list_own_runs_granted(
            pool,
            bearer.digest,
            bearer.now,
            task_id=task_id,
            status=status,
            success=success,
            start=start,
            end=end,
            limit=paging.limit,
            offset=paging.offset,
            after=keyset.cursor_position(cursor, paging.offset),
        )
        owner_id: UUID | None = bearer.admit(grant).agent_id
        query = ("runs", owner_id, task_id, status, success, start, end)
        keyset.start_after(secret, cursor, paging.offset, query)
        counted = None
        if total and cursor is None:
            counted = await runs.count_runs(
                pool,
                owner_id,
                task_id=task_id,
                status=status,
                success=success,
                start=start,
                end=end,
            )
    else:
        owner_id = owner_filter(await bearer.verify(), owner)
        query = ("runs", owner_id, task_id, status, success, start, end)
        rows, counted, more = await runs.list_runs(
            pool,
            owner_id,
            task_id=task_id,
            status=status,
            success=success,
            start=start,
            end=end,
            limit=paging.limit,
            offset=paging.offset,
            after=keyset.start_after(secret, cursor, paging.offset, query),
            count=total and cursor is None,
        )
    # plain rows: the response model validates and serializes the envelope once
    return keyset.page(
        rows,
        keyset.as_is,
        sort="scheduled_for",
        total=counted,
        limit=paging.limit,
        offset=paging.offset,
        more=more,
        secret=secret,
        query=query,
    )


@router.get("/runs/stats/summary", response_model=RunsOverview)
async def runs_summary(who: Reader, deps: DepsDep, now: Now) -> RunsOverview:
    """Counts of the caller's runs (all time and the last 24 hours) and tasks."""
    pool = await deps.pool()
    summary = await runs.summary(pool, who.agent_id, since=now - timedelta(hours=24))
    return RunsOverview.model_validate(summary)


@router.get("/runs/attention", response_model=Attention)
async def runs_attention(
    who: Reader,
    deps: DepsDep,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many of each list.")] = 20,
) -> Attention:
    """What needs a person, over all of the caller's history, in one answer: runs that ended
    without success and have not been retried since (dead letters), and tasks whose latest
    finished run did not succeed; each newest first with its total. Task titles need
    ``tasks:read``."""
    pool = await deps.pool()
    found = await runs.attention(pool, who.agent_id, limit=limit)
    if not who.has("tasks:read"):
        for item in found["dead_letters"]:
            item["task_title"] = None
        for item in found["failing_tasks"]:
            item["title"] = None
    return Attention.model_validate(found)


@router.get("/runs/task/{task_id}/latest", response_model=RunOut)
async def latest_run(task_id: TaskId, who: Reader, deps: DepsDep) -> RunOut:
    """The task's most recent run with its step results (404 before its first run)."""
    pool = await deps.pool()
    await tasks.get_task(pool, task_id, who.agent_id)
    row = await runs.latest_run(pool, task_id, who.agent_id)
    if row is None:
        raise NotFound(f"task {task_id} has no runs yet", {"task_id": str(task_id)})
    return RunOut.model_validate(row)


@router.get("/runs/task/{task_id}/stats", response_model=TaskStats)
async def task_stats(task_id: TaskId, who: Reader, deps: DepsDep) -> TaskStats:
    """Counts, durations and success rate of the task's runs."""
    pool = await deps.pool()
    await tasks.get_task(pool, task_id, who.agent_id)
    stats = await runs.task_stats(pool, task_id, who.agent_id)
    return TaskStats.model_validate({"task_id": task_id, **stats})


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: RunId, who: Reader, deps: DepsDep, owner: Owner = None) -> RunOut:
    """One run with the record of each step (inputs and outputs, secrets masked); admins read
    any agent's with ``owner=*``."""
    pool = await deps.pool()
    row = await runs.get_run(pool, run_id, owner_filter(who, owner))
    row["notifications"] = await notifications.for_run(pool, run_id, row["owner_id"])
    return RunOut.model_validate(row)


@router.get("/runs/{run_id}/attempts", response_model=RunAttempts)
async def get_run_attempts(
    run_id: RunId, who: Reader, deps: DepsDep, owner: Owner = None
) -> RunAttempts:
    """Every attempt of one run, oldest first: each attempt that ended and was retried, then
    the current or final one, with their step records; admins read any agent's with
    ``owner=*``."""
    pool = await deps.pool()
    found = await runs.run_attempts(pool, run_id, owner_filter(who, owner))
    return RunAttempts.model_validate(found)


@router.post(
    "/runs/{run_id}/retry", status_code=202, response_model=RunSummary, responses=errors(409)
)
async def retry_run(
    run_id: RunId, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> RunSummary:
    """Requeue a dead-lettered (or failed) run now, with a fresh retry budget (409 from any
    other state; admins: any agent's run)."""
    return await _act(run_id, who, deps, now, rid, "run.retry")


@router.post("/runs/{run_id}/cancel", response_model=RunSummary, responses=errors(409))
async def cancel_run(
    run_id: RunId, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> RunSummary:
    """Cancel a queued or running run; a running attempt's result is discarded (409 from any
    other state; admins: any agent's run)."""
    return await _act(run_id, who, deps, now, rid, "run.cancel")


async def _act(
    run_id: UUID, who: Principal, deps: Deps, now: datetime, rid: str, action: str
) -> RunSummary:
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
                request_id=rid,
                owner_id=owner_id,
            )
            # read before the commit: the answer is the state this request made (a woken
            # worker may lease a retried run the moment it commits)
            row = await runs.get_run(conn, run_id, owner_id)
        if action == "run.retry":
            await work.notify_work(conn)
    if action == "run.retry":
        await deps.wake_workers()
    return RunSummary.model_validate(row)
