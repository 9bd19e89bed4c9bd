"""Events: publish (stored before 202, fan-out to subscribed tasks), topics, recent events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from ordinaut.api.deps import Deps, Principal, get_deps, require
from ordinaut.ingest import ingest_event
from ordinaut.store import events

router = APIRouter(tags=["events"])


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1, max_length=200)
    payload: Any = Field(default_factory=dict)
    event_id: str | None = Field(default=None, min_length=1, max_length=200)


@router.post("/events", status_code=202)
async def publish_event(
    body: EventIn,
    who: Principal = Depends(require("events:publish")),
    deps: Deps = Depends(get_deps),
) -> dict[str, Any]:
    """Store the event durably, then queue one run per active event task whose topic matches."""
    pool = await deps.pool()
    return await ingest_event(
        pool,
        tenant_id=who.agent_id,
        topic=body.topic,
        payload=body.payload,
        event_id=body.event_id,
        now=deps.clock.now(),
    )


@router.get("/events/topics")
async def list_topics(
    who: Principal = Depends(require("tasks:read")), deps: Deps = Depends(get_deps)
) -> dict[str, Any]:
    """Topic patterns with active subscribed tasks (the caller's own)."""
    pool = await deps.pool()
    return {"items": await events.topics(pool, who.agent_id)}


@router.get("/events/stream/recent")
async def recent_events(
    who: Principal = Depends(require("tasks:read")),
    deps: Deps = Depends(get_deps),
    topic: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    """The caller's most recent events, newest first (bounded)."""
    pool = await deps.pool()
    items = await events.recent(pool, who.agent_id, topic=topic, limit=limit)
    return jsonable_encoder({"items": items})
