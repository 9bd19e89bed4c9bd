"""Every REST route as a ``Call``: method, path, query, body and how to read the answer.

The async and the sync client both send these, so the two can never disagree about a route.
Pure: building a call does no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote
from uuid import UUID

from ordinaut.client.models import (
    Agent,
    AgentCreated,
    AgentSecret,
    AuditEntry,
    EventAccepted,
    FireTimes,
    FunctionInfo,
    Items,
    Model,
    Page,
    Run,
    RunQueued,
    Task,
    TaskSpec,
    Tokens,
    ToolInfo,
    Validation,
)

T = TypeVar("T")
M = TypeVar("M", bound=Model)
Id = str | UUID
TaskBody = TaskSpec | Mapping[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request. ``safe`` means sending it twice does no harm, so it may be retried after a
    503 or a dropped connection; a 429 is always retried (the API did not process it)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    safe: bool = False
    auth: bool = True
    raw_errors: bool = False  # answer error documents instead of raising (health)


def segment(value: Id) -> str:
    """One path segment, percent-encoded, so an id can never reach another route."""
    text = str(value)
    if not text:
        raise ValueError("an id must not be empty")
    return quote(text, safe="")


def _model(cls: type[M]) -> Callable[[Any], M]:
    return cls.model_validate


def _page(cls: type[M]) -> Callable[[Any], Page[M]]:
    return Page[cls].model_validate  # type: ignore[valid-type]


def _nothing(_: Any) -> None:
    return None


def _dict(data: Any) -> dict[str, Any]:
    return dict(data) if isinstance(data, dict) else {"value": data}


def _functions(data: Any) -> list[FunctionInfo]:
    return [FunctionInfo.model_validate(f) for f in data["functions"]]


def _tools(data: Any) -> list[ToolInfo]:
    return [ToolInfo.model_validate(t) for t in data["items"]]


def _items(data: Any) -> list[dict[str, Any]]:
    return Items.model_validate(data).items


def _query(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; instants as ISO 8601, booleans as JSON."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        out[key.rstrip("_")] = value
    return out


def new_key() -> str:
    """A fresh idempotency key / event id."""
    return uuid.uuid4().hex


# --- tasks ---------------------------------------------------------------------------------


def create_task(task: TaskBody, idempotency_key: str | None = None) -> Call[Task]:
    # The key is made once per create_task call, so the client's own retries replay it.
    return Call(
        "POST",
        "/tasks",
        _model(Task),
        json=dict(task),
        headers={"Idempotency-Key": idempotency_key or new_key()},
        safe=True,
    )


def list_tasks(
    status: str | None,
    schedule_kind: str | None,
    limit: int,
    offset: int,
    search: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Call[Page[Task]]:
    params = _query(
        status=status, schedule_kind=schedule_kind, limit=limit, offset=offset, search=search
    )
    if labels:
        # repeated label=key:value, every one of which a task must carry
        params["label"] = [f"{key}:{value}" for key, value in labels.items()]
    return Call("GET", "/tasks", _page(Task), params=params, safe=True)


def get_task(task_id: Id) -> Call[Task]:
    return Call("GET", f"/tasks/{segment(task_id)}", _model(Task), safe=True)


def replace_task(task_id: Id, task: TaskBody) -> Call[Task]:
    return Call("PUT", f"/tasks/{segment(task_id)}", _model(Task), json=dict(task), safe=True)


def patch_task(task_id: Id, changes: Mapping[str, Any]) -> Call[Task]:
    return Call("PATCH", f"/tasks/{segment(task_id)}", _model(Task), json=dict(changes), safe=True)


def delete_task(task_id: Id) -> Call[None]:
    return Call("DELETE", f"/tasks/{segment(task_id)}", _nothing, safe=True)


def task_action(task_id: Id, action: str) -> Call[Task]:
    """pause / resume / cancel."""
    return Call("POST", f"/tasks/{segment(task_id)}/{action}", _model(Task))


def run_task_now(task_id: Id) -> Call[RunQueued]:
    return Call("POST", f"/tasks/{segment(task_id)}/run_now", _model(RunQueued))


def snooze_task(task_id: Id, delay_seconds: int, reason: str | None) -> Call[Task]:
    body: dict[str, Any] = {"delay_seconds": delay_seconds}
    if reason is not None:
        body["reason"] = reason
    return Call("POST", f"/tasks/{segment(task_id)}/snooze", _model(Task), json=body)


def preview_task(
    task_id: Id, from_: datetime | None, until: datetime | None, limit: int
) -> Call[FireTimes]:
    params = _query(from_=from_, until=until, limit=limit)
    path = f"/tasks/{segment(task_id)}/preview"
    return Call("GET", path, _model(FireTimes), params=params, safe=True)


def preview_schedule(
    schedule_kind: str,
    schedule_expr: str,
    timezone: str,
    from_: datetime | None,
    until: datetime | None,
    limit: int,
) -> Call[FireTimes]:
    body: dict[str, Any] = {
        "schedule_kind": schedule_kind,
        "schedule_expr": schedule_expr,
        "timezone": timezone,
        "limit": limit,
    }
    body.update(_query(from_=from_, until=until))
    return Call("POST", "/schedules/preview", _model(FireTimes), json=body, safe=True)


def validate_task(
    task: TaskBody | None,
    payload: Mapping[str, Any] | None,
    dry_run: bool,
    sample_params: Mapping[str, Any] | None,
) -> Call[Validation]:
    body: dict[str, Any] = {"dry_run": dry_run}
    if task is not None:
        body["task"] = dict(task)
    if payload is not None:
        body["payload"] = dict(payload)
    if sample_params is not None:
        body["sample_params"] = dict(sample_params)
    return Call("POST", "/tasks/validate", _model(Validation), json=body, safe=True)


# --- runs ----------------------------------------------------------------------------------


def list_runs(
    task_id: Id | None,
    status: str | None,
    success: bool | None,
    start_time: datetime | None,
    end_time: datetime | None,
    limit: int,
    offset: int,
    owner: str | None = None,
) -> Call[Page[Run]]:
    params = _query(
        task_id=str(task_id) if task_id is not None else None,
        status=status,
        success=success,
        start_time=start_time,
        end_time=end_time,
        limit=limit,
        offset=offset,
        owner=owner,
    )
    return Call("GET", "/runs", _page(Run), params=params, safe=True)


def get_run(run_id: Id) -> Call[Run]:
    return Call("GET", f"/runs/{segment(run_id)}", _model(Run), safe=True)


def latest_run(task_id: Id) -> Call[Run]:
    return Call("GET", f"/runs/task/{segment(task_id)}/latest", _model(Run), safe=True)


def task_run_stats(task_id: Id) -> Call[dict[str, Any]]:
    return Call("GET", f"/runs/task/{segment(task_id)}/stats", _dict, safe=True)


def runs_summary() -> Call[dict[str, Any]]:
    return Call("GET", "/runs/stats/summary", _dict, safe=True)


def run_action(run_id: Id, action: str) -> Call[Run]:
    """retry / cancel."""
    return Call("POST", f"/runs/{segment(run_id)}/{action}", _model(Run))


# --- audit and the operators' view (admin) --------------------------------------------------


def list_audit(
    actor: Id | None,
    subject_type: str | None,
    subject_id: Id | None,
    action: str | None,
    from_: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> Call[Page[AuditEntry]]:
    params = _query(
        actor=str(actor) if actor is not None else None,
        subject_type=subject_type,
        subject_id=str(subject_id) if subject_id is not None else None,
        action=action,
        from_=from_,
        until=until,
        limit=limit,
        offset=offset,
    )
    return Call("GET", "/audit", _page(AuditEntry), params=params, safe=True)


def admin_overview() -> Call[dict[str, Any]]:
    return Call("GET", "/admin/overview", _dict, safe=True)


# --- events --------------------------------------------------------------------------------


def publish_event(topic: str, payload: Any, event_id: str | None) -> Call[EventAccepted]:
    # A duplicate event_id is accepted once, so an id made here makes retries safe.
    body = {"topic": topic, "payload": {} if payload is None else payload}
    body["event_id"] = event_id or new_key()
    return Call("POST", "/events", _model(EventAccepted), json=body, safe=True)


def event_topics() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/events/topics", _items, safe=True)


def recent_events(topic: str | None, limit: int) -> Call[list[dict[str, Any]]]:
    params = _query(topic=topic, limit=limit)
    return Call("GET", "/events/stream/recent", _items, params=params, safe=True)


# --- tools, secrets, health ----------------------------------------------------------------


def list_tools() -> Call[list[ToolInfo]]:
    return Call("GET", "/tools", _tools, safe=True)


def list_functions() -> Call[list[FunctionInfo]]:
    return Call("GET", "/pipeline/functions", _functions, safe=True)


def put_secret(name: str, value: str) -> Call[None]:
    return Call("PUT", f"/secrets/{segment(name)}", _nothing, json={"value": value}, safe=True)


def list_secrets() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/secrets", _items, safe=True)


def delete_secret(name: str) -> Call[None]:
    return Call("DELETE", f"/secrets/{segment(name)}", _nothing, safe=True)


def health(path: str = "/health") -> Call[dict[str, Any]]:
    return Call("GET", path, _dict, safe=True, auth=False, raw_errors=True)


# --- agents and tokens ---------------------------------------------------------------------


def create_agent(name: str, scopes: list[str]) -> Call[AgentCreated]:
    body = {"name": name, "scopes": list(scopes)}
    return Call("POST", "/agents", _model(AgentCreated), json=body)


def list_agents(limit: int, offset: int) -> Call[Page[Agent]]:
    params = _query(limit=limit, offset=offset)
    return Call("GET", "/agents", _page(Agent), params=params, safe=True)


def get_agent(agent_id: Id) -> Call[Agent]:
    return Call("GET", f"/agents/{segment(agent_id)}", _model(Agent), safe=True)


def update_agent(
    agent_id: Id, name: str | None, scopes: list[str] | None, is_active: bool | None
) -> Call[Agent]:
    body = {
        k: v
        for k, v in (("name", name), ("scopes", scopes), ("is_active", is_active))
        if v is not None
    }
    return Call("PUT", f"/agents/{segment(agent_id)}", _model(Agent), json=body, safe=True)


def delete_agent(agent_id: Id) -> Call[None]:
    return Call("DELETE", f"/agents/{segment(agent_id)}", _nothing, safe=True)


def rotate_agent_secret(agent_id: Id) -> Call[AgentSecret]:
    return Call("POST", f"/agents/{segment(agent_id)}/credentials", _model(AgentSecret))


def exchange_token(agent_id: Id, agent_secret: str) -> Call[Tokens]:
    body = {"agent_id": str(agent_id), "agent_secret": agent_secret}
    return Call("POST", "/agents/auth/token", _model(Tokens), json=body, auth=False)


def refresh_token(refresh_token: str) -> Call[Tokens]:
    body = {"refresh_token": refresh_token}
    return Call("POST", "/agents/auth/refresh", _model(Tokens), json=body, auth=False)


def revoke_token(token: str) -> Call[None]:
    return Call("POST", "/agents/auth/revoke", _nothing, json={"token": token}, safe=True)
