"""What the API returns, as lenient pydantic models.

Fields the API documents are typed; anything else it adds later is kept (``extra="allow"``)
rather than rejected, so an older client keeps working against a newer server. Identifiers
stay strings (what callers pass back in URLs); instants are aware datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, NotRequired, Required, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ordinaut.vocabulary import FINAL_RUN_STATUSES

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict with every field, including ones this client does not know."""
        return self.model_dump(mode="json")


class Page(Model, Generic[T]):
    """The one list envelope: ``{items, total, limit, offset, has_more}``."""

    items: list[T]
    total: int
    limit: int
    offset: int
    has_more: bool


class Task(Model):
    id: str
    title: str
    description: str = ""
    schedule_kind: str
    schedule_expr: str
    timezone: str = "UTC"
    dtstart: datetime | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    status: str
    priority: int = 5
    max_retries: int = 3
    backoff_strategy: str = "exponential_jitter"
    dedupe_key: str | None = None
    dedupe_window_seconds: int | None = None
    concurrency_key: str | None = None
    misfire_policy: str = "run_once"
    overlap_policy: str = "skip"
    created_by: str
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None = None
    snoozed_until: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    # in lists only: the latest finished run and the failures of the last 24 hours
    last_run_status: str | None = None
    last_run_at: datetime | None = None
    failures_24h: int | None = None


class Run(Model):
    id: str
    task_id: str
    scheduled_for: datetime
    status: str
    attempt: int
    trigger: str
    event_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    output: Any = None
    error: Any = None
    success: bool | None = None
    created_at: datetime
    updated_at: datetime
    step_results: list[dict[str, Any]] | None = None
    owner_id: str | None = None  # the agent owning it (admins list across agents)

    @property
    def finished(self) -> bool:
        """True once the run will not change by itself any more."""
        return self.status in FINAL_RUN_STATUSES


class RunQueued(Model):
    """What ``run_now`` answers: the queued run's id."""

    run_id: str
    task_id: str
    scheduled_for: datetime


class FireTimes(Model):
    """Fire times in UTC from the scheduler's own code (a task's or a draft schedule's)."""

    fire_times: list[datetime]
    timezone: str | None = None
    schedule_kind: str | None = None


class Validation(Model):
    valid: bool
    payload: dict[str, Any] = Field(default_factory=dict)
    next_run_at: datetime | None = None
    steps: list[dict[str, Any]] | None = None


class EventAccepted(Model):
    event_id: str
    topic: str
    duplicate: bool = False
    runs_queued: int = 0
    runs_refused: int = 0  # past the agent's runs-per-minute budget
    tasks_matched: int = 0


class ToolInfo(Model):
    name: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] = Field(default_factory=dict)
    default_timeout_s: float | None = None
    scopes: list[str] = Field(default_factory=list)


class FunctionInfo(Model):
    """One expression function of ``${...}`` (``GET /pipeline/functions``)."""

    name: str
    signature: str
    description: str = ""
    example: str = ""
    result: Any = None


class Agent(Model):
    id: str
    name: str
    scopes: list[str]
    is_active: bool = True
    created_at: datetime
    updated_at: datetime


class AgentCreated(Agent):
    agent_secret: str


class AgentSecret(Model):
    agent_id: str
    agent_secret: str


class Tokens(Model):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str


class Items(Model):
    """``{"items": [...]}`` lists that are bounded and not paged (topics, recent events)."""

    items: list[dict[str, Any]]


class TaskSpec(TypedDict, total=False):
    """A task body for create / replace, as the API documents it (docs/api.md, "Tasks")."""

    title: Required[str]
    schedule_kind: Required[str]
    schedule_expr: Required[str]
    payload: Required[dict[str, Any]]
    description: NotRequired[str]
    timezone: NotRequired[str]
    priority: NotRequired[int]
    max_retries: NotRequired[int]
    backoff_strategy: NotRequired[str]
    dedupe_key: NotRequired[str | None]
    dedupe_window_seconds: NotRequired[int | None]
    concurrency_key: NotRequired[str | None]
    misfire_policy: NotRequired[str]
    overlap_policy: NotRequired[str]
    labels: NotRequired[dict[str, str]]


class AuditEntry(Model):
    """One audit row: ``actor_id`` did ``action`` to ``subject_type`` ``subject_id``."""

    id: int
    created_at: datetime
    actor_id: str | None = None
    action: str
    subject_type: str
    subject_id: str | None = None
    owner_id: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
