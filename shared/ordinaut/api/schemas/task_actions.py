"""What is done to or asked of a task besides storing it: snooze, schedule preview, validation
(with its dry run) and run-now, with their answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from ordinaut.api.schemas.common import Strict
from ordinaut.api.schemas.tasks import TASK_EXAMPLE, Payload, TaskCreate
from ordinaut.vocabulary import ScheduleKind


class SnoozeIn(Strict):
    """Postpone the task's pending runs."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"delay_seconds": 3600, "reason": "in a meeting"}]},
    )
    delay_seconds: int = Field(ge=1, le=365 * 24 * 3600, description="How long to postpone.")
    reason: str | None = Field(default=None, max_length=500, description="Kept in the audit log.")


class PreviewIn(Strict):
    """A schedule to preview without creating a task."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"schedule_kind": "cron", "schedule_expr": "0 7 * * 1-5", "timezone": "UTC"}
            ]
        },
    )
    schedule_kind: ScheduleKind = Field(description="As in a task.")
    schedule_expr: str = Field(min_length=1, max_length=2_000, description="As in a task.")
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="As in a task.")
    from_: datetime | None = Field(
        default=None,
        alias="from",
        description="Fire times strictly after this instant (default: now); needs an offset.",
    )
    until: datetime | None = Field(
        default=None, description="Fire times before this instant; needs an offset."
    )
    limit: int = Field(default=10, ge=1, le=1000, description="At most this many fire times.")


class ValidateIn(Strict):
    """A whole task, or only a payload (pipeline) to check; ``dry_run`` renders every step."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"task": TASK_EXAMPLE, "dry_run": True}]},
    )
    task: TaskCreate | None = Field(default=None, description="A whole task to check.")
    payload: Payload | None = Field(default=None, description="Only a payload to check.")
    dry_run: bool = Field(default=False, description="Render each step without running it.")
    sample_params: dict[str, Any] | None = Field(
        default=None, description="`params` for the dry run (default: the payload's own)."
    )


class ValidateOut(BaseModel):
    valid: bool = Field(description="Always true: an invalid task is a 422.")
    payload: dict[str, Any] = Field(description="The payload as it would be stored.")
    next_run_at: datetime | None = Field(
        default=None, description="For a whole task: its first fire time (UTC)."
    )
    steps: list[dict[str, Any]] | None = Field(
        default=None,
        description="With `dry_run`: each step's rendered input or why it failed (a foreach "
        "step: also its `foreach` list and one `items` entry per item).",
    )


class FireTimes(BaseModel):
    fire_times: list[datetime] = Field(description="Fire times in UTC, earliest first.")
    schedule_kind: ScheduleKind | None = Field(
        default=None, description="Set for event and condition tasks, which have no fire times."
    )
    timezone: str | None = Field(
        default=None, description="The time zone the schedule was read in (schedule preview)."
    )


class RunQueued(BaseModel):
    run_id: UUID = Field(description="The queued run; follow it with `GET /runs/{run_id}`.")
    task_id: UUID = Field(description="Its task.")
    scheduled_for: datetime = Field(description="When it was queued for (now, UTC).")
