"""A run's HTTP bodies: a run with its attempts, step results and webhooks, what needs a
person (dead letters, failing tasks), and the run statistics of a task or an agent."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from ordinaut.vocabulary import NotificationStatus, NotifyOutcome, RunStatus, TaskStatus


class RunSummary(BaseModel):
    """One run: its current or last attempt (every attempt: ``GET /runs/{id}/attempts``); step
    results only on the single-run routes."""

    id: UUID = Field(description="The run's id.")
    task_id: UUID = Field(description="Its task.")
    owner_id: UUID = Field(
        description="The agent owning its task (admins read across agents with `owner=`)."
    )
    scheduled_for: datetime = Field(description="The fire time or request time it is for (UTC).")
    status: RunStatus = Field(
        description="`queued`, `running`, `succeeded`, `dead_letter` (ended without success "
        "and will not be retried), `canceled`, `skipped`; `failed` appears only on runs "
        "recorded by older versions."
    )
    attempt: int = Field(description="The current or last attempt, from 1.")
    trigger: str = Field(description="`schedule`, `event`, `condition` or `run_now`.")
    event_id: str | None = Field(description="The event that queued it (event tasks).")
    started_at: datetime | None = Field(description="When the last attempt started (UTC).")
    finished_at: datetime | None = Field(description="When the run ended (UTC).")
    duration_ms: int | None = Field(
        description="`finished_at` - `started_at` of the last attempt, in milliseconds."
    )
    output: Any = Field(default=None, description="The last step's output (succeeded runs).")
    error: Any = Field(
        default=None, description="`{step, code, message}` of the failure, or why it was skipped."
    )
    success: bool | None = Field(description="True succeeded, false failed, null otherwise.")
    created_at: datetime = Field(description="When the run was queued (UTC).")
    updated_at: datetime = Field(description="When the run last changed (UTC).")


class NotificationOut(BaseModel):
    """One webhook of a run's outcome (the task's `payload.notify`) and how its delivery went."""

    id: UUID = Field(description="The delivery id, sent as the `Ordinaut-Delivery` header.")
    outcome: NotifyOutcome = Field(
        description="The outcome it reports (`failed`: an attempt failed, the run is retried)."
    )
    url: str = Field(description="Where it is sent.")
    status: NotificationStatus = Field(
        description="`pending` (queued or waiting for a retry), `delivered` (a 2xx answer), "
        "`failed` (given up: attempts used, or an error no retry can fix)."
    )
    attempts: int = Field(description="Delivery attempts so far.")
    last_status_code: int | None = Field(description="The receiver's last HTTP status, if any.")
    last_error: str | None = Field(description="Why the last attempt failed, if it did.")
    delivered_at: datetime | None = Field(description="When it was delivered (UTC).")
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending).")
    created_at: datetime = Field(description="When it was queued (UTC).")
    updated_at: datetime = Field(description="When it last changed (UTC).")
    history: list[dict[str, Any]] = Field(
        description="Every attempt: `{attempt, at, status_code, error}`."
    )


class RunOut(RunSummary):
    """One run with the record of every step."""

    step_results: list[dict[str, Any]] | None = Field(
        default=None,
        description="Per step: `{id, uses, status, input, output, error, duration_ms, "
        "attempts}` (secrets masked); a foreach step adds `items`, one `{index, status, input, "
        "error, duration_ms, attempts}` per item, and its output is the items' outputs in order.",
    )
    notifications: list[NotificationOut] | None = Field(
        default=None,
        description="`GET /runs/{id}` only: the webhooks its outcomes were sent to "
        "(`payload.notify`), each with its delivery attempts.",
    )


class RunAttempt(BaseModel):
    """One attempt of a run."""

    attempt: int = Field(description="Its number, from 1.")
    status: RunStatus = Field(
        description="How it ended: `failed` for an attempt that was retried, `dead_letter` for "
        "one retried by hand; the current attempt carries the run's status."
    )
    current: bool = Field(
        description="True for the run's current or final attempt (the run's own record); "
        "false for an attempt that ended and was retried."
    )
    started_at: datetime | None = Field(description="When it started (UTC); null before.")
    finished_at: datetime | None = Field(description="When it ended (UTC); null until then.")
    duration_ms: int | None = Field(description="`finished_at` - `started_at`, milliseconds.")
    output: Any = Field(default=None, description="The last step's output (a success).")
    error: Any = Field(default=None, description="`{step, code, message}` of its failure.")
    step_results: list[dict[str, Any]] = Field(
        description="Per step that ran or was skipped: `{id, uses, status, input, output, "
        "error, duration_ms, attempts}` (secrets masked); steps that never ran are absent."
    )
    worker_id: str | None = Field(description="The worker that ran it, when known.")


class RunAttempts(BaseModel):
    """Every attempt of one run, oldest first, the current or final one last."""

    run_id: UUID = Field(description="The run.")
    task_id: UUID = Field(description="Its task.")
    status: RunStatus = Field(description="The run's status.")
    attempt: int = Field(description="The run's current or last attempt.")
    attempts: list[RunAttempt] = Field(
        description="Oldest first. Attempts of runs retried before this record existed are "
        "missing: their numbers are skipped."
    )


class AttentionRun(BaseModel):
    """A run that ended without success and has not been retried since."""

    id: UUID = Field(description="The run's id.")
    task_id: UUID = Field(description="Its task.")
    task_title: str | None = Field(description="The task's title (null without `tasks:read`).")
    status: RunStatus = Field(description="`dead_letter` (`failed`: recorded by older versions).")
    attempt: int = Field(description="Its last attempt.")
    trigger: str = Field(description="`schedule`, `event`, `condition` or `run_now`.")
    scheduled_for: datetime = Field(description="The slot it was for (UTC).")
    finished_at: datetime = Field(description="When it ended (UTC).")
    error: Any = Field(default=None, description="`{step, code, message}` of the failure.")


class FailingTask(BaseModel):
    """A task whose latest finished run did not succeed."""

    task_id: UUID = Field(description="The task.")
    title: str | None = Field(description="Its title (null without `tasks:read`).")
    task_status: TaskStatus = Field(description="The task's status.")
    run_id: UUID = Field(description="Its latest finished run.")
    status: RunStatus = Field(description="That run's status.")
    scheduled_for: datetime = Field(description="The slot that run was for (UTC).")
    finished_at: datetime = Field(description="When it ended (UTC).")
    error: Any = Field(default=None, description="Its error.")


class Attention(BaseModel):
    """What needs a person, over all of the caller's history."""

    dead_letters: list[AttentionRun] = Field(description="The newest first, at most `limit`.")
    dead_letters_total: int = Field(description="All of them.")
    failing_tasks: list[FailingTask] = Field(description="Newest failure first, at most `limit`.")
    failing_tasks_total: int = Field(description="All of them.")
    limit: int = Field(description="The limit asked for.")


class RunCounts(BaseModel):
    total: int = Field(description="Runs in all.")
    succeeded: int = Field(description="Runs that succeeded.")
    failed: int = Field(description="Runs recorded as failed (older versions).")
    dead_letter: int = Field(description="Runs that ended without success, not retried.")
    queued: int = Field(description="Runs waiting.")
    running: int = Field(description="Runs running.")
    skipped: int = Field(description="Runs skipped.")
    canceled: int = Field(description="Runs canceled.")
    avg_duration_ms: float | None = Field(description="Mean duration of finished runs.")
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed + dead_letter); null before any ended."
    )


class TaskStats(RunCounts):
    task_id: UUID = Field(description="The task.")
    p50_duration_ms: float | None = Field(description="Median duration.")
    p95_duration_ms: float | None = Field(description="95th percentile duration.")
    last_started_at: datetime | None = Field(description="When a run last started.")
    last_success_at: datetime | None = Field(description="When a run last succeeded.")
    last_failure_at: datetime | None = Field(description="When a run last ended without success.")


class AgentRunCounts(RunCounts):
    last_24h: int = Field(description="Runs queued in the last 24 hours.")
    succeeded_24h: int = Field(description="Of those, succeeded.")
    failed_24h: int = Field(description="Of those, ended without success.")


class TaskCounts(BaseModel):
    total: int = Field(description="Tasks the agent owns.")
    active: int = Field(description="Active tasks.")
    paused: int = Field(description="Paused tasks.")


class RunsOverview(BaseModel):
    runs: AgentRunCounts = Field(description="The agent's runs.")
    tasks: TaskCounts = Field(description="The agent's tasks.")
