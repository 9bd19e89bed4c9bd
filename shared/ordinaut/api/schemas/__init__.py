"""The HTTP schemas of the REST API (pydantic): request and response bodies with their
documented bounds, one module per resource, and ``Page``, the one list envelope every paged
list route returns.

``common`` holds what every resource shares (``Strict``, ``Page``, ``KeysetPage``, the error
envelope); ``tasks``, ``task_actions``, ``labels``, ``runs``, ``agents``, ``events``,
``secrets``, ``audit``, ``tools`` and ``health`` hold their resource's bodies. Every public name
is re-exported here: import from ``ordinaut.api.schemas``. The modules of this package import
each other directly, never through this ``__init__``.
"""

from __future__ import annotations

from ordinaut.api.schemas.agents import (
    AgentCreate,
    AgentCreated,
    AgentOut,
    AgentUpdate,
    Credentials,
    Me,
    Name,
    RefreshRequest,
    RevokeRequest,
    Scope,
    Scopes,
    TokenOut,
    TokenRequest,
)
from ordinaut.api.schemas.audit import AuditEntry
from ordinaut.api.schemas.common import ErrorDetail, ErrorEnvelope, KeysetPage, Page, Strict
from ordinaut.api.schemas.events import (
    EventAccepted,
    EventIn,
    RecentEvent,
    RecentEvents,
    SharedTopic,
    SharedTopicIn,
    TopicCount,
    Topics,
)
from ordinaut.api.schemas.health import Health, Live, Ready, Unhealthy
from ordinaut.api.schemas.labels import (
    LABEL_KEY_RE,
    LABEL_VALUE_RE,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    LabelKey,
    Labels,
    LabelValue,
    label_filter,
)
from ordinaut.api.schemas.runs import (
    AgentRunCounts,
    Attention,
    AttentionRun,
    FailingTask,
    NotificationOut,
    RunAttempt,
    RunAttempts,
    RunCounts,
    RunOut,
    RunsOverview,
    RunSummary,
    TaskCounts,
    TaskStats,
)
from ordinaut.api.schemas.secrets import SecretIn, SecretInfo, SecretNames
from ordinaut.api.schemas.task_actions import (
    FireTimes,
    PreviewIn,
    RunQueued,
    SnoozeIn,
    ValidateIn,
    ValidateOut,
)
from ordinaut.api.schemas.tasks import (
    PATCH_EXAMPLE,
    TASK_EXAMPLE,
    Payload,
    TaskCreate,
    TaskFields,
    TaskListItem,
    TaskOut,
    TaskPatch,
)
from ordinaut.api.schemas.tools import FunctionInfo, Functions, ToolInfo, Tools

__all__ = [
    "AgentCreate",
    "AgentCreated",
    "AgentOut",
    "AgentRunCounts",
    "AgentUpdate",
    "Attention",
    "AttentionRun",
    "AuditEntry",
    "Credentials",
    "ErrorDetail",
    "ErrorEnvelope",
    "EventAccepted",
    "EventIn",
    "FailingTask",
    "FireTimes",
    "FunctionInfo",
    "Functions",
    "Health",
    "KeysetPage",
    "label_filter",
    "LABEL_KEY_RE",
    "LABEL_VALUE_RE",
    "LabelKey",
    "Labels",
    "LabelValue",
    "Live",
    "MAX_LABEL_KEY",
    "MAX_LABEL_VALUE",
    "MAX_LABELS",
    "Me",
    "Name",
    "NotificationOut",
    "Page",
    "PATCH_EXAMPLE",
    "Payload",
    "PreviewIn",
    "Ready",
    "RecentEvent",
    "RecentEvents",
    "RefreshRequest",
    "RevokeRequest",
    "RunAttempt",
    "RunAttempts",
    "RunCounts",
    "RunOut",
    "RunQueued",
    "RunsOverview",
    "RunSummary",
    "Scope",
    "Scopes",
    "SecretIn",
    "SecretInfo",
    "SecretNames",
    "SharedTopic",
    "SharedTopicIn",
    "SnoozeIn",
    "Strict",
    "TASK_EXAMPLE",
    "TaskCounts",
    "TaskCreate",
    "TaskFields",
    "TaskListItem",
    "TaskOut",
    "TaskPatch",
    "TaskStats",
    "TokenOut",
    "TokenRequest",
    "ToolInfo",
    "Tools",
    "TopicCount",
    "Topics",
    "Unhealthy",
    "ValidateIn",
    "ValidateOut",
]
