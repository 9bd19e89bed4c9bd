"""Typed rows at the store boundary: what the worker and the scheduler read, checked by mypy.

Each row type is a frozen dataclass built with ``from_row`` from an ``asyncpg.Record`` (or any
mapping of column names): the columns a caller reads are fields, so a misspelt or missing
column is a type error, not a ``KeyError`` at run time. ``from_row`` reads exactly the
dataclass's fields, so a query may return more columns than a type names.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Protocol, Self
from uuid import UUID


class Columns(Protocol):
    """A row read by column name: an ``asyncpg.Record``, a dict."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Row:
    @classmethod
    def from_row(cls, row: Columns) -> Self:
        """The row's columns named by this type's fields (a missing one is a ``KeyError``)."""
        return cls(*[row[name] for name in _field_names(cls)])


def _field_names(cls: type[_Row]) -> tuple[str, ...]:
    names: tuple[str, ...] | None = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


_FIELDS: dict[type[_Row], tuple[str, ...]] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class SlotTask(_Row):
    """What a new slot copies from its task (``work.NewSlot.for_task``)."""

    id: UUID
    created_by: UUID
    priority: int
    max_retries: int
    concurrency_key: str | None
    overlap_policy: str


@dataclasses.dataclass(frozen=True, slots=True)
class DueTask(SlotTask):
    """A task the scheduler locked to plan its slots (``tasks.lock_due_tasks``)."""

    schedule_kind: str
    schedule_expr: str
    timezone: str
    dtstart: datetime | None
    next_run_at: datetime  # the query reads only tasks that have one
    misfire_policy: str
    snoozed_until: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class TaskRow(SlotTask):
    """A whole task as stored (``tasks.TASK_COLUMNS``), for readers that want it typed."""

    title: str
    description: str
    schedule_kind: str
    schedule_expr: str
    timezone: str
    dtstart: datetime | None
    payload: dict[str, Any]
    status: str
    backoff_strategy: str
    dedupe_key: str | None
    dedupe_window_seconds: int | None
    misfire_policy: str
    next_run_at: datetime | None
    snoozed_until: datetime | None
    created_at: datetime
    updated_at: datetime
    max_duration_s: float | None
    run_bound_s: float | None
    labels: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class TaskPayload(_Row):
    """A task's current payload and its version (``work.task_payloads``)."""

    id: UUID
    payload_version: int
    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ConditionState(_Row):
    """A condition task's status and its last evaluation (``conditions.load``); ``value`` is
    None while it was never evaluated."""

    status: str
    schedule_kind: str
    value: bool | None
    fired_at: datetime | None
    evaluated_for: datetime | None
    evaluated_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class CountedAttempt(_Row):
    """An attempt ended without an outcome (``work.rescue_expired``, ``work.cut_at_deadline``):
    ``requeued`` (attempt + 1) or ``dead_letter`` (it was the last)."""

    id: UUID  # the run
    task_id: UUID
    owner_id: UUID
    action: str  # requeued | dead_letter


@dataclasses.dataclass(frozen=True, slots=True)
class LeasedRun(_Row):
    """One leased attempt (``work.lease``): the slot, its lease, its task, event and owner."""

    run_id: UUID
    task_id: UUID
    attempt: int
    max_attempts: int
    lease_token: UUID
    run_at: datetime
    owner_id: UUID
    scheduled_for: datetime
    trigger: str  # schedule | condition | event | run_now | retry
    event_id: str | None
    idempotency_key: str
    # the W3C traceparent of the request that created the slot, continued by the run's span
    trace_context: str | None
    title: str
    task_version: int  # the task's payload version: the worker's pipeline cache key
    overlap_policy: str
    backoff_strategy: str
    run_bound_s: float | None
    sibling_running: bool  # only ever true for overlap "skip" of a scheduled slot
    # the event that started the run (trigger "event"), as stored
    event_key: str | None
    event_topic: str | None
    event_payload: Any
    event_depth: int | None
    # the owner as it is at the lease
    owner_active: bool
    owner_scopes: list[str]

    def as_mapping(self) -> dict[str, Any]:
        """The row as a plain dict of its columns (a shallow copy)."""
        return {name: getattr(self, name) for name in _field_names(type(self))}
