"""The HTTP schemas of the REST API (pydantic): request and response bodies with their
documented bounds, and ``Page``, the one list envelope every paged list route returns."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field

from ordinaut.errors import ValidationFailed
from ordinaut.secrets import MAX_VALUE_BYTES
from ordinaut.vocabulary import Backoff, Misfire, Overlap, RunStatus, ScheduleKind, TaskStatus


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Labels: a small map an agent files its tasks under (docs/api.md, "Labels"). Keys are short
# identifiers so that `key:value` filters and `--label key=value` stay unambiguous.
MAX_LABELS = 16
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 256
LABEL_KEY_RE = r"^[a-z0-9][a-z0-9._/-]*$"
LABEL_VALUE_RE = r"^[^\x00-\x1f\x7f]*$"  # no control characters
LabelKey = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LABEL_KEY, pattern=LABEL_KEY_RE)
]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE, pattern=LABEL_VALUE_RE)]
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(
        max_length=MAX_LABELS,
        description=f"Up to {MAX_LABELS} labels: keys of 1-63 characters (lowercase letters, "
        "digits, `.` `_` `-` `/`, starting with a letter or digit), values of up to "
        f"{MAX_LABEL_VALUE} characters without control characters. List tasks by label with "
        "`GET /tasks?label=key:value`.",
        examples=[{"user": "ana", "team": "ops"}],
    ),
]


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
        from ordinaut.client.words import describe_schedule

        return describe_schedule(self.schedule_kind, self.schedule_expr, self.timezone)


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


class RunSummary(BaseModel):
    """One run (attempt history is in ``attempt``; step results only on the single-run routes)."""

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


class RunOut(RunSummary):
    """One run with the record of every step."""

    step_results: list[dict[str, Any]] | None = Field(
        default=None,
        description="Per step: `{id, uses, status, input, output, error, duration_ms, "
        "attempts}` (secrets masked); a foreach step adds `items`, one `{index, status, input, "
        "error, duration_ms, attempts}` per item, and its output is the items' outputs in order.",
    )


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


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """The list envelope every paged list route uses."""

    items: list[T] = Field(description="This page's items.")
    total: int = Field(description="Items matching, over every page.")
    limit: int = Field(description="The page size asked for.")
    offset: int = Field(description="Items skipped before this page.")
    has_more: bool = Field(description="True when a later page has items.")


class SecretIn(BaseModel):
    """A secret's value (write-only)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"value": "s3cr3t-t0ken"}]}
    )
    value: str = Field(
        min_length=1, max_length=MAX_VALUE_BYTES, description="Stored encrypted; never returned."
    )


class SecretInfo(BaseModel):
    name: str = Field(description="The secret's name.")
    created_at: datetime = Field(description="When it was first stored (UTC).")
    updated_at: datetime = Field(description="When its value last changed (UTC).")


class SecretNames(BaseModel):
    items: list[SecretInfo] = Field(description="The caller's secrets, by name.")


def label_filter(values: list[str] | None) -> list[tuple[str, str]]:
    """``label=key:value`` query values as (key, value) pairs (a 422 naming ``label`` for a
    malformed one); every pair must match (AND)."""
    pairs: list[tuple[str, str]] = []
    problems: list[dict[str, Any]] = []
    for text in values or []:
        key, sep, value = text.partition(":")
        if not sep or len(key) > MAX_LABEL_KEY or not re.fullmatch(LABEL_KEY_RE, key):
            problems.append(
                {
                    "field": "query.label",
                    "message": "a label filter is key:value with a valid label key "
                    f"(got {text[:80]!r})",
                }
            )
        elif len(value) > MAX_LABEL_VALUE or not re.fullmatch(LABEL_VALUE_RE, value):
            problems.append(
                {
                    "field": "query.label",
                    "message": f"a label value has at most {MAX_LABEL_VALUE} characters and no "
                    "control characters",
                }
            )
        else:
            pairs.append((key, value))
    if len(values or []) > MAX_LABELS:
        problems.append({"field": "query.label", "message": f"at most {MAX_LABELS} label filters"})
    if problems:
        raise ValidationFailed("invalid label filter", problems)
    return pairs
