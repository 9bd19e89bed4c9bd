"""Events: an event to publish and what publishing it did, the topics tasks subscribe to, the
recent events, and the topics shared with every tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class EventIn(BaseModel):
    """An event to publish."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "topic": "orders.created",
                    "payload": {"order_id": "A-1001", "total": 42.5},
                    "event_id": "order-A-1001-created",
                }
            ]
        },
    )
    topic: str = Field(
        min_length=1,
        max_length=200,
        description="Tasks whose `schedule_expr` pattern matches it get a run (`orders.*`).",
    )
    payload: dict[str, Any] = Field(
        default_factory=dict, description="A JSON object; runs read it as `${event.payload}`."
    )
    event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Your id for the event: publishing the same id again is a no-op "
        "(`duplicate: true`). Default: a new UUID.",
    )


class EventAccepted(BaseModel):
    event_id: str = Field(description="The event's id (yours, or the one assigned).")
    topic: str = Field(description="The topic it was published on.")
    duplicate: bool = Field(description="True when this event id was published before.")
    runs_queued: int = Field(description="Runs queued for it now (0 for a duplicate).")
    runs_refused: int = Field(
        default=0,
        description="Matched tasks that got no run: the publishing agent's budget of runs per "
        "minute (`max_runs_per_minute_per_agent`) was spent. A `runs.throttled` lifecycle event "
        "records them.",
    )
    tasks_matched: int = Field(description="Tasks whose pattern and filter matched.")


class TopicCount(BaseModel):
    topic: str = Field(description="A topic pattern active event tasks subscribe to.")
    tasks: int = Field(description="How many of the caller's active tasks use it.")


class Topics(BaseModel):
    items: list[TopicCount] = Field(description="Patterns, sorted.")


class RecentEvent(BaseModel):
    event_id: str = Field(description="The event's id.")
    topic: str = Field(description="Its topic.")
    payload: Any = Field(description="Its payload.")
    source: str = Field(description="Where it came from (`api`, `run`, `shared`...).")
    received_at: datetime = Field(description="When it was stored (UTC).")
    tasks_matched: int | None = Field(description="Tasks it queued runs for.")


class RecentEvents(BaseModel):
    items: list[RecentEvent] = Field(description="Newest first.")


class SharedTopic(BaseModel):
    pattern: str = Field(description="The shared topic or `*` pattern.")
    created_by: UUID | None = Field(description="The admin agent that declared it.")
    created_at: datetime = Field(description="When it was declared (UTC).")


class SharedTopicIn(BaseModel):
    """A topic pattern to share with every tenant."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"pattern": "prices.*"}]}
    )
    pattern: str = Field(
        min_length=1,
        max_length=200,
        description="a topic or a * pattern (`prices.*`); tasks subscribe with `shared:prices.*`",
    )
