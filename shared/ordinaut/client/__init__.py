"""Python client for Ordinaut's REST API: ``AsyncOrdinaut`` (async) and ``Ordinaut`` (sync).

>>> from ordinaut.client import Ordinaut
>>> with Ordinaut("http://127.0.0.1:8080", agent_id="...", agent_secret="...") as client:
...     task = client.create_task({"title": "hi", "schedule_kind": "cron",
...                                "schedule_expr": "0 8 * * 1-5", "timezone": "Europe/Chisinau",
...                                "payload": {"pipeline": [{"id": "a", "uses": "echo"}]}})
...     print(client.preview_task(task.id).fire_times)

Errors are typed (``NotFoundError``, ``ValidationError`` ...), each with the API's ``code``,
``message``, ``details``, ``request_id`` and HTTP ``status``. 429 and 503 are retried a bounded
number of times, honouring ``Retry-After``.
"""

from ordinaut.client.aio import AsyncOrdinaut, apaginate
from ordinaut.client.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    OrdinautAPIError,
    OrdinautClientError,
    OrdinautConnectionError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    UnavailableError,
    ValidationError,
)
from ordinaut.client.models import (
    Agent,
    AgentCreated,
    AgentSecret,
    AuditEntry,
    EventAccepted,
    FireTimes,
    FunctionInfo,
    Page,
    Run,
    RunQueued,
    Task,
    TaskSpec,
    Tokens,
    ToolInfo,
    Validation,
)
from ordinaut.client.session import DEFAULT_URL, RetryPolicy
from ordinaut.client.sync import Ordinaut, paginate
from ordinaut.vocabulary import FINAL_RUN_STATUSES

RateLimited = RateLimitedError

__all__ = [
    "DEFAULT_URL",
    "FINAL_RUN_STATUSES",
    "Agent",
    "AgentCreated",
    "AgentSecret",
    "AsyncOrdinaut",
    "AuditEntry",
    "AuthError",
    "BadRequestError",
    "ConflictError",
    "EventAccepted",
    "FireTimes",
    "FunctionInfo",
    "NotFoundError",
    "Ordinaut",
    "OrdinautAPIError",
    "OrdinautClientError",
    "OrdinautConnectionError",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimited",
    "RateLimitedError",
    "RetryPolicy",
    "Run",
    "RunQueued",
    "ServerError",
    "Task",
    "TaskSpec",
    "Tokens",
    "ToolInfo",
    "UnavailableError",
    "Validation",
    "ValidationError",
    "apaginate",
    "paginate",
]
