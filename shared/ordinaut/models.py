"""Request and response models of the REST API (pydantic), with the documented bounds."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

ScheduleKind = Literal["cron", "rrule", "once", "event", "condition"]
Backoff = Literal["exponential_jitter", "linear", "fixed"]
Misfire = Literal["skip", "run_once", "run_all"]
Overlap = Literal["skip", "allow", "buffer_one"]
TaskStatus = Literal["active", "paused", "canceled", "completed"]
RunStatus = Literal[
    "queued", "running", "succeeded", "failed", "dead_letter", "canceled", "skipped"
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict)
    pipeline: list[dict[str, Any]] = Field(default_factory=list, max_length=200)
    # trigger fields, checked by ordinaut.conditions: event tasks' filter; condition tasks'
    # check (steps), condition (expression) and cooldown_seconds
    filter: str | None = Field(default=None, max_length=2_000)
    check: list[dict[str, Any]] | None = Field(default=None, max_length=200)
    condition: str | None = Field(default=None, max_length=2_000)
    cooldown_seconds: float | None = Field(default=None, ge=0, le=366 * 24 * 3600)


class TaskFields(Strict):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    schedule_kind: ScheduleKind
    schedule_expr: str = Field(min_length=1, max_length=2_000)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    payload: Payload
    priority: int = Field(default=5, ge=1, le=9)
    max_retries: int = Field(default=3, ge=0, le=100)
    backoff_strategy: Backoff = "exponential_jitter"
    dedupe_key: str | None = Field(default=None, min_length=1, max_length=200)
    dedupe_window_seconds: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)
    concurrency_key: str | None = Field(default=None, min_length=1, max_length=200)
    misfire_policy: Misfire = "run_once"
    overlap_policy: Overlap = "skip"


class TaskCreate(TaskFields):
    pass


class TaskPatch(Strict):
    """Partial update: only the fields given change (PATCH); PUT requires every field."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    schedule_kind: ScheduleKind | None = None
    schedule_expr: str | None = Field(default=None, min_length=1, max_length=2_000)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    payload: Payload | None = None
    priority: int | None = Field(default=None, ge=1, le=9)
    max_retries: int | None = Field(default=None, ge=0, le=100)
    backoff_strategy: Backoff | None = None
    dedupe_key: str | None = Field(default=None, min_length=1, max_length=200)
    dedupe_window_seconds: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)
    concurrency_key: str | None = Field(default=None, min_length=1, max_length=200)
    misfire_policy: Misfire | None = None
    overlap_policy: Overlap | None = None

    @staticmethod
    def nullable() -> frozenset[str]:
        """Fields a PATCH may clear by sending null."""
        return frozenset({"dedupe_key", "dedupe_window_seconds", "concurrency_key"})


class TaskOut(BaseModel):
    id: UUID
    title: str
    description: str
    schedule_kind: str
    schedule_expr: str
    timezone: str
    dtstart: datetime | None
    payload: dict[str, Any]
    status: TaskStatus
    priority: int
    max_retries: int
    backoff_strategy: str
    dedupe_key: str | None
    dedupe_window_seconds: int | None
    concurrency_key: str | None
    misfire_policy: str
    overlap_policy: str
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None
    snoozed_until: datetime | None


class SnoozeIn(Strict):
    delay_seconds: int = Field(ge=1, le=365 * 24 * 3600)
    reason: str | None = Field(default=None, max_length=500)


class PreviewIn(Strict):
    schedule_kind: ScheduleKind
    schedule_expr: str = Field(min_length=1, max_length=2_000)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    from_: datetime | None = Field(default=None, alias="from")
    until: datetime | None = None
    limit: int = Field(default=10, ge=1, le=1000)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ValidateIn(Strict):
    """A whole task, or only a payload (pipeline) to check; ``dry_run`` renders every step."""

    task: TaskCreate | None = None
    payload: Payload | None = None
    dry_run: bool = False
    sample_params: dict[str, Any] | None = None


class RunOut(BaseModel):
    id: UUID
    task_id: UUID
    owner_id: UUID  # the agent owning the task (admins list across agents)
    scheduled_for: datetime
    status: RunStatus
    attempt: int
    trigger: str
    event_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    output: Any = None
    error: Any = None
    success: bool | None
    created_at: datetime
    updated_at: datetime
    step_results: list[dict[str, Any]] | None = None


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """The one list envelope every collection route returns."""
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + len(items) < total,
    }
