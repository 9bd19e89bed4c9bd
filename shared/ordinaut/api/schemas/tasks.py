"""A task's HTTP bodies: what a run does (``Payload``), the fields a create or a replace
sends, a partial update, and a task as stored and as listed."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, computed_field

from ordinaut.api.schemas.common import Strict
from ordinaut.api.schemas.labels import Labels
from ordinaut.vocabulary import Backoff, Misfire, Overlap, ScheduleKind, TaskStatus

TASK_EXAMPLE: dict[str, Any] = {
    "title": "Morning briefing",
    "description": "Weather and calendar at 7:00 on weekdays",
    "schedule_kind": "cron",
    "schedule_expr": "0 7 * * 1-5",
    "timezone": "Europe/Paris",
    "payload": {
        "params": {"city": "Paris"},
        "pipeline": [
            {"id": "greet", "uses": "echo", "with": {"text": "Good morning, ${params.city}!"}}
        ],
    },
    "priority": 5,
    "max_retries": 3,
    "labels": {"user": "ana"},
}
PATCH_EXAMPLE: dict[str, Any] = {"schedule_expr": "30 7 * * 1-5", "priority": 3}


class Payload(BaseModel):
    """What a run does: parameters and the pipeline of tool steps (see `GET /tools`)."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Values the pipeline reads as `${params.NAME}`; any JSON object.",
    )
    pipeline: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=200,
        description="Steps run in order: `{id, uses, with, if, save_as, timeout_seconds, retry, "
        "continue_on_error, foreach, max_concurrency}`; `uses` names a tool from `GET /tools` "
        "(docs/pipeline.md).",
    )
    # trigger fields, checked by ordinaut.conditions: event tasks' filter; condition tasks'
    # check (steps), condition (expression) and cooldown_seconds
    filter: str | None = Field(
        default=None,
        max_length=2_000,
        description="Event tasks: an expression over `event`; the run is queued only when true.",
    )
    check: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=200,
        description="Condition tasks: steps run on each poll before `condition` is evaluated.",
    )
    condition: str | None = Field(
        default=None,
        max_length=2_000,
        description="Condition tasks: the expression that makes the pipeline run when true.",
    )
    cooldown_seconds: float | None = Field(
        default=None,
        ge=0,
        le=366 * 24 * 3600,
        description="Condition tasks: the least time between two runs the condition starts.",
    )
    notify: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=5,
        description="Webhooks for the run's end, at most 5: `{url, on, secret}`; `url` https "
        "(http only to hosts in ORDINAUT_EGRESS_ALLOWLIST), `on` a non-empty subset of "
        "`succeeded`, `failed` (an attempt failed, the run is retried), `dead_letter`, "
        "`secret` the name of a stored secret the body is signed with (HMAC-SHA256, header "
        "`Ordinaut-Signature: t=<unix s>,v1=<hex>` over `<t>.<body>`).",
    )


class TaskFields(Strict):
    title: str = Field(min_length=1, max_length=200, description="A short name for people.")
    description: str = Field(default="", max_length=10_000, description="Free text.")
    schedule_kind: ScheduleKind = Field(
        description="`cron`, `rrule` (RFC 5545), `once` (an ISO 8601 instant), `event` "
        "(a topic pattern) or `condition` (polled)."
    )
    schedule_expr: str = Field(
        min_length=1,
        max_length=2_000,
        description="The schedule in the syntax of `schedule_kind`: `0 7 * * 1-5`, "
        "`FREQ=DAILY;BYHOUR=7`, `2026-01-01T08:00:00Z`, `orders.*`, or the poll interval.",
    )
    timezone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        description="IANA time zone the schedule is read in (`Europe/Paris`).",
    )
    payload: Payload = Field(description="What each run does.")
    priority: int = Field(
        default=5, ge=1, le=9, description="1 (first) to 9 (last) among runs due together."
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Retries after a failed attempt; a run that fails with none left, or "
        "with an error no retry can fix, is dead-lettered.",
    )
    backoff_strategy: Backoff = Field(
        default="exponential_jitter", description="How long a retry waits."
    )
    dedupe_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="With `dedupe_window_seconds`: a second create with this key inside the "
        "window is a 409.",
    )
    dedupe_window_seconds: int | None = Field(
        default=None, ge=0, le=30 * 24 * 3600, description="The window of `dedupe_key`."
    )
    concurrency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Runs of tasks sharing this key never run at the same time.",
    )
    misfire_policy: Misfire = Field(
        default="run_once",
        description="Fire times missed while nothing ran: skip them, run once, or run each.",
    )
    overlap_policy: Overlap = Field(
        default="skip",
        description="A scheduled run due while the previous one still runs: skip it, run "
        "it alongside, or keep one waiting.",
    )
    labels: Labels = Field(default_factory=dict)
    max_duration_s: float | None = Field(
        default=None,
        gt=0,
        le=24 * 3600,
        description="The longest one attempt may take, in seconds; at most the deployment's "
        "ORDINAUT_MAX_RUN_DURATION_S. Absent: the pipeline's worst case (step timeouts x "
        "attempts) is the bound. A run past it fails that attempt (`run_timeout`).",
    )


class TaskCreate(TaskFields):
    """A whole task (POST creates, PUT replaces every field)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TASK_EXAMPLE]})


class TaskPatch(Strict):
    """Partial update: only the fields given change (PATCH); PUT requires every field."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PATCH_EXAMPLE]})

    title: str | None = Field(default=None, min_length=1, max_length=200, description="See create.")
    description: str | None = Field(default=None, max_length=10_000, description="See create.")
    schedule_kind: ScheduleKind | None = Field(default=None, description="See create.")
    schedule_expr: str | None = Field(
        default=None, min_length=1, max_length=2_000, description="See create."
    )
    timezone: str | None = Field(
        default=None, min_length=1, max_length=64, description="See create."
    )
    payload: Payload | None = Field(default=None, description="Replaces the whole payload.")
    priority: int | None = Field(default=None, ge=1, le=9, description="See create.")
    max_retries: int | None = Field(default=None, ge=0, le=100, description="See create.")
    backoff_strategy: Backoff | None = Field(default=None, description="See create.")
    dedupe_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="null clears it."
    )
    dedupe_window_seconds: int | None = Field(
        default=None, ge=0, le=30 * 24 * 3600, description="null clears it."
    )
    concurrency_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="null clears it."
    )
    misfire_policy: Misfire | None = Field(default=None, description="See create.")
    overlap_policy: Overlap | None = Field(default=None, description="See create.")
    max_duration_s: float | None = Field(
        default=None, gt=0, le=24 * 3600, description="See create; null clears it."
    )
    labels: Labels | None = Field(
        default=None, description="Replaces the whole map (`{}` removes every label)."
    )

    @staticmethod
    def nullable() -> frozenset[str]:
        """Fields a PATCH may clear by sending null."""
        return frozenset(
            {"dedupe_key", "dedupe_window_seconds", "concurrency_key", "max_duration_s"}
        )


@functools.cache
def _describe() -> Callable[[str, str, str], str]:
    """``ordinaut.client.words.describe_schedule``, imported on the first task answered: its
    package's ``__init__`` loads the HTTP client, which the API's cold start does without. An
    import statement in ``schedule_text`` itself would run on every task answered."""
    describe: Callable[[str, str, str], str] = importlib.import_module(
        "ordinaut.client.words"
    ).describe_schedule
    return describe


class TaskOut(BaseModel):
    """A task as stored."""

    id: UUID = Field(description="The task's id.")
    title: str = Field(description="A short name for people.")
    description: str = Field(description="Free text.")
    schedule_kind: ScheduleKind = Field(description="The kind of schedule.")
    schedule_expr: str = Field(description="The schedule in the syntax of its kind.")
    timezone: str = Field(description="IANA time zone the schedule is read in.")
    dtstart: datetime | None = Field(
        description="RRULE schedules: the first occurrence the rule counts from (UTC)."
    )
    payload: dict[str, Any] = Field(
        description="Parameters and pipeline, as sent (see the create body)."
    )
    status: TaskStatus = Field(description="`active`, `paused`, `canceled` or `completed`.")
    priority: int = Field(description="1 (first) to 9 (last).")
    max_retries: int = Field(description="Retries after a failed attempt.")
    backoff_strategy: Backoff = Field(description="How long a retry waits.")
    dedupe_key: str | None = Field(description="The create-dedupe key, if any.")
    dedupe_window_seconds: int | None = Field(description="The window of `dedupe_key`.")
    concurrency_key: str | None = Field(description="Runs sharing it never overlap.")
    misfire_policy: Misfire = Field(description="What happens to missed fire times.")
    overlap_policy: Overlap = Field(description="What happens to a run due while one runs.")
    created_by: UUID = Field(description="The agent that owns the task.")
    created_at: datetime = Field(description="When the task was created (UTC).")
    updated_at: datetime = Field(description="When the task last changed (UTC).")
    next_run_at: datetime | None = Field(
        description="The next fire time (UTC); null when paused, finished or event-driven."
    )
    snoozed_until: datetime | None = Field(description="Runs due before this wait until then.")
    max_duration_s: float | None = Field(
        default=None, description="The longest one attempt may take, in seconds, if set."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="The task's labels (`{}` when it has none)."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def schedule_text(self) -> str:
        """The schedule in words in the task's zone ("every weekday at 08:00 Europe/Chisinau"),
        the same words the CLI and the MCP server use; fire times come from the scheduler."""
        return _describe()(self.schedule_kind, self.schedule_expr, self.timezone)


class TaskListItem(TaskOut):
    """A task in a list, with what a person scanning the list asks next: how did it last go."""

    last_run_status: str | None = Field(
        default=None,
        description="Status of the task's latest finished run (by scheduled time); null if none.",
    )
    last_run_at: datetime | None = Field(
        default=None, description="When that run finished (UTC); null if none."
    )
    failures_24h: int = Field(
        default=0,
        description="Runs scheduled in the last 24 hours that failed or dead-lettered, counted "
        "among the task's latest 1,000 runs of that window.",
    )
