"""Events: publish (stored before 202, fan-out to subscribed tasks), topics, recent events,
shared topics (admin) and the live stream of lifecycle events (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ordinaut.api.contract import errors
from ordinaut.api.deps import (
    BEARER_SECURITY,
    Bearer,
    Deps,
    DepsDep,
    Now,
    Page,
    PagingDep,
    Principal,
    principal_of,
    require,
    require_bearer,
)
from ordinaut.api.errors import is_unavailable
from ordinaut.api.schemas import (
    EventAccepted,
    EventIn,
    RecentEvents,
    SharedTopic,
    SharedTopicIn,
    Topics,
)
from ordinaut.api.strict import JSONRoute
from ordinaut.errors import NotFound, RateLimited, Unavailable, ValidationFailed
from ordinaut.ingest import ingest_granted
from ordinaut.pipeline.context import iso_utc
from ordinaut.store import agents, events, outbox
from ordinaut.taskdefs import SHARED_PREFIX

router = APIRouter(tags=["events"], route_class=JSONRoute)

Reader = Annotated[Principal, Depends(require("tasks:read"))]
PublisherToken = Annotated[Bearer, Depends(require_bearer("events:publish"))]
Admin = Annotated[Principal, Depends(require("admin"))]

PATTERN = r"^[A-Za-z0-9._:*-]{1,200}$"
PATTERN_RE = re.compile(PATTERN)
SSE_BATCH = 200
# One event of the live stream as a client parses it (comments are not events).
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "description": "The event's outbox `seq`."},
        "event": {"type": "string", "description": "The event type (`run.succeeded`...)."},
        "data": {
            "type": "string",
            "description": "JSON: `{seq, event_id, type, time, tenant_id, subject_id, payload}`; "
            "the last event, `end`, says why the stream ended.",
        },
        "retry": {"description": "Reconnection delay in milliseconds."},
    },
}


@router.post(
    "/events", status_code=202, response_model=EventAccepted, openapi_extra=BEARER_SECURITY
)
async def publish_event(body: EventIn, bearer: PublisherToken) -> dict[str, Any]:
    """Store the event durably, then queue one run per active event task whose topic matches.

    Runs past the agent's budget (``max_runs_per_minute_per_agent``) are not queued: the answer
    counts them in ``runs_refused`` and a ``runs.throttled`` lifecycle event records them."""
    deps = bearer.deps
    pool = await deps.pool()
    async with pool.acquire() as conn:  # one connection for every statement of the request
        return await ingest_granted(
            conn,
            digest=bearer.digest,  # checked by the routing statement itself
            at=bearer.now,
            scope=bearer.scope,
            admit=lambda grant: bearer.admit(grant).agent_id,
            topic=body.topic,
            payload=body.payload,
            event_id=body.event_id,
            now=bearer.now,
            max_runs_per_minute=deps.settings.max_runs_per_minute_per_agent,
            on_wake=deps.wake_workers,
        )


@router.get("/events/topics", response_model=Topics)
async def list_topics(who: Reader, deps: DepsDep) -> dict[str, Any]:
    """Topic patterns with active subscribed tasks (the caller's own)."""
    pool = await deps.pool()
    return {"items": await events.topics(pool, who.agent_id)}


@router.get("/events/stream/recent", response_model=RecentEvents)
async def recent_events(
    who: Reader,
    deps: DepsDep,
    topic: str | None = Query(None, max_length=200, description="Only events on this topic."),
    limit: int = Query(50, ge=1, le=500, description="At most this many."),
) -> dict[str, Any]:
    """The caller's most recent events, newest first (bounded)."""
    pool = await deps.pool()
    items = await events.recent(pool, who.agent_id, topic=topic, limit=limit)
    return jsonable_encoder({"items": items})


# --- shared topics -----------------------------------------------------------------------------


def _check_pattern(pattern: str, field: str) -> str:
    if not PATTERN_RE.match(pattern) or pattern.startswith(SHARED_PREFIX):
        message = "1-200 characters: letters, digits, . _ : - and * (not starting with shared:)"
        raise ValidationFailed(message, [{"field": field, "message": message}])
    return pattern


@router.post(
    "/events/shared-topics",
    status_code=201,
    response_model=SharedTopic,
    responses={
        200: {"model": SharedTopic, "description": "The pattern was shared already."},
        201: {
            "description": "The pattern is shared now.",
            "links": {
                "StopSharing": {
                    "operationId": "delete_shared_topic_events_shared_topics__pattern__delete",
                    "parameters": {"pattern": "$response.body#/pattern"},
                    "description": "Stop sharing it.",
                }
            },
        },
    },
)
async def declare_shared_topic(
    body: SharedTopicIn,
    response: Response,
    who: Admin,
    deps: DepsDep,
    now: Now,
) -> dict[str, Any]:
    """Declare a topic pattern shared: events on it reach every tenant's ``shared:`` tasks.
    201 when new, 200 when it was declared already."""
    pattern = _check_pattern(body.pattern, "pattern")
    pool = await deps.pool()
    row, new = await events.declare_shared(pool, pattern, who.agent_id, now)
    if not new:
        response.status_code = 200
    return jsonable_encoder(row)


@router.get("/events/shared-topics", response_model=Page[SharedTopic])
async def list_shared_topics(
    paging: PagingDep,
    who: Reader,
    deps: DepsDep,
) -> dict[str, Any]:
    """Every shared-topic pattern (readable by all agents: it is what they may subscribe to)."""
    pool = await deps.pool()
    rows = await events.list_shared(pool)
    items = rows[paging.offset : paging.offset + paging.limit]
    return jsonable_encoder(paging.page(items, len(rows)))


@router.delete("/events/shared-topics/{pattern}", status_code=204, response_class=Response)
async def delete_shared_topic(
    pattern: Annotated[str, Path(max_length=200, description="The shared pattern to remove.")],
    who: Admin,
    deps: DepsDep,
) -> Response:
    """Stop sharing a pattern; subscriptions stay and simply stop matching."""
    pool = await deps.pool()
    if not await events.delete_shared(pool, pattern):
        raise NotFound(f"shared topic {pattern!r} not found", {"pattern": pattern})
    return Response(status_code=204)


# --- the live stream ---------------------------------------------------------------------------


class Tail:
    """Which rows of a tenant's outbox to send next.

    Rows are read after ``floor`` and deduplicated against what was sent; the floor moves
    only past rows first seen ``settle_s`` ago. A row whose transaction commits after a
    higher seq was streamed, but within ``settle_s``, is still sent (out of seq order); one
    later than that reaches the relay and Redis but not this stream.
    """

    def __init__(self, cursor: int, settle_s: float) -> None:
        self.floor = cursor
        self.settle_s = settle_s
        self.seen: dict[int, float] = {}

    def fresh(self, rows: list[asyncpg.Record], now: float) -> list[asyncpg.Record]:
        out = [r for r in rows if r["seq"] not in self.seen]
        for r in out:
            self.seen[r["seq"]] = now
        return out

    def settle(self, now: float) -> None:
        settled = [s for s, t in self.seen.items() if now - t >= self.settle_s]
        if settled:
            self.floor = max(self.floor, *settled)
            self.seen = {s: t for s, t in self.seen.items() if s > self.floor}


def _frame(row: asyncpg.Record) -> bytes:
    data = {
        "seq": row["seq"],
        "event_id": str(row["event_id"]),
        "type": row["event_type"],
        "time": iso_utc(row["created_at"]),
        "tenant_id": str(row["tenant_id"]),
        "subject_id": str(row["subject_id"]) if row["subject_id"] else None,
        "payload": row["payload"],
    }
    return (
        f"id: {row['seq']}\nevent: {row['event_type']}\ndata: ".encode()
        + orjson.dumps(data)
        + b"\n\n"
    )


class _Slots:
    """Live streams open in this process: in all (``sse_max_connections``) and per agent
    (``sse_max_per_agent``), so one agent holding streams cannot lock the others out."""

    def __init__(self) -> None:
        self.open = 0
        self.by_agent: dict[UUID, int] = {}

    def take(self, agent: UUID) -> None:
        self.open += 1
        self.by_agent[agent] = self.by_agent.get(agent, 0) + 1

    def give_back(self, agent: UUID) -> None:
        self.open -= 1
        left = self.by_agent.get(agent, 1) - 1
        if left > 0:
            self.by_agent[agent] = left
        else:
            self.by_agent.pop(agent, None)


class _Stream(StreamingResponse):
    """Frees its connection slot however the response ends (finished, client gone)."""

    def __init__(self, body: AsyncIterator[bytes], slots: _Slots, agent: UUID) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.slots = slots
        self.agent = agent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.give_back(self.agent)


def _cursor(header: str | None, query: int | None) -> int | None:
    if header is None:
        return query
    if not header.isdigit() or len(header) > 19:
        raise ValidationFailed(
            "Last-Event-ID must be an event's seq (a whole number)",
            [{"field": "header.Last-Event-ID", "message": "a whole number"}],
        )
    return int(header)


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events (`id`, `event`, `data` lines), until "
            "`sse_max_seconds`.",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        },
        **errors(503),
    },
)
async def stream_events(
    request: Request,
    who: Reader,
    deps: DepsDep,
    type_: str | None = Query(
        None,
        alias="type",
        max_length=200,
        pattern=PATTERN,
        description="Only events of this type or `*` pattern (`run.*`).",
    ),
    topic: str | None = Query(
        None, max_length=200, pattern=PATTERN, description="Only events on this topic pattern."
    ),
    task_id: UUID | None = Query(None, description="Only events about this task."),
    last_event_id: int | None = Query(
        None, ge=0, le=2**62, description="Start right after this event (first connection)."
    ),
    last_event_header: str | None = Header(
        None, alias="Last-Event-ID", description="Resume right after this event's `seq`."
    ),
) -> StreamingResponse:
    """The caller's lifecycle events as Server-Sent Events, read from the outbox.

    Each event is ``id: <outbox seq>``, ``event: <type>``, ``data: {seq, event_id, type,
    time, tenant_id, subject_id, payload}``. Filters: ``type`` (``run.*``), ``topic`` (the
    topic of ``event.received`` and ``custom.*`` events) and ``task_id``. Without
    ``Last-Event-ID`` (header, or ``last_event_id`` for the first connection) the stream starts
    now; with it, right after that event. Comments keep idle connections open; each stream
    ends after ``sse_max_seconds`` (reconnect with ``Last-Event-ID``); at most
    ``sse_max_connections`` are open per process (else 503), and at most
    ``sse_max_per_agent`` per agent and process (else 429). The token is checked again every
    ``sse_recheck_s``: once it is revoked, its agent deactivated or its scope removed, the
    stream ends with ``event: end`` (reason ``unauthorized``).

    Read from PostgreSQL rather than Redis: it works while Redis is down (the outbox is written
    in the same transaction as each change), ``seq`` makes resuming exact, and the tenant is a
    column, so no other tenant's event is ever read into the response.
    """
    settings = deps.settings
    cursor = _cursor(last_event_header, last_event_id)
    slots: _Slots = getattr(request.app.state, "sse_slots", None) or _Slots()
    request.app.state.sse_slots = slots
    if slots.open >= settings.sse_max_connections:
        raise Unavailable(
            f"too many live event streams (sse_max_connections={settings.sse_max_connections})",
            {"limit": "sse_max_connections", "retry_after_s": 5},
        )
    per_agent = settings.sse_max_per_agent
    if per_agent > 0 and slots.by_agent.get(who.agent_id, 0) >= per_agent:
        raise RateLimited(
            f"this agent has {per_agent} live event streams open (sse_max_per_agent)",
            {"limit": "sse_max_per_agent", "max": per_agent, "retry_after_s": 5},
        )
    pool = await deps.pool()
    if cursor is None:
        cursor = await outbox.latest_seq(pool)
    slots.take(who.agent_id)
    try:
        body = _events(
            deps,
            who.agent_id,
            _bearer(request),
            Tail(cursor, settings.sse_settle_s),
            type_pattern=type_,
            topic_pattern=topic,
            task_id=task_id,
        )
        return _Stream(body, slots, who.agent_id)
    except BaseException:
        slots.give_back(who.agent_id)
        raise


def _bearer(request: Request) -> str:
    """The request's bearer token (``require`` checked it), so the stream can check it again."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _still_allowed(deps: Deps, token: str) -> bool:
    """Whether the stream's token still grants ``tasks:read``: revoking it, deactivating its
    agent or removing the scope ends a stream already open, not only the next request."""
    # a fresh reading, not the request's: the stream outlives the instant it was opened at
    grant = await agents.authenticate(await deps.pool(), token, deps.clock.now())
    return grant is not None and principal_of(grant).has("tasks:read")


async def _not_revoked(deps: Deps, token: str) -> bool:
    """``_still_allowed``, except that an unavailable database does not end the stream: the
    rows read next say the database is down, and the grant is checked again later."""
    try:
        return await _still_allowed(deps, token)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        return True


async def _events(
    deps: Deps,
    tenant_id: UUID,
    token: str,
    tail: Tail,
    *,
    type_pattern: str | None,
    topic_pattern: str | None,
    task_id: UUID | None,
) -> AsyncIterator[bytes]:
    settings = deps.settings
    loop = asyncio.get_running_loop()
    started = last_write = checked = loop.time()
    yield b"retry: 2000\n: connected\n\n"
    while True:
        if loop.time() - checked >= settings.sse_recheck_s:
            checked = loop.time()
            if not await _not_revoked(deps, token):
                yield b'event: end\ndata: {"reason": "unauthorized"}\n\n'
                return
        after = tail.floor
        try:
            pool = await deps.pool()
            while True:
                rows = await outbox.tenant_after(
                    pool,
                    tenant_id,
                    after,
                    type_pattern=type_pattern,
                    topic_pattern=topic_pattern,
                    task_id=task_id,
                    limit=SSE_BATCH,
                )
                for row in tail.fresh(rows, loop.time()):
                    yield _frame(row)
                    last_write = loop.time()
                if len(rows) < SSE_BATCH:
                    break
                after = rows[-1]["seq"]
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            yield b": database unavailable; retrying\n\n"
            last_write = loop.time()
        now = loop.time()
        tail.settle(now)
        if now - started >= settings.sse_max_seconds:
            yield b'event: end\ndata: {"reason": "sse_max_seconds"}\n\n'
            return
        if now - last_write >= settings.sse_keepalive_s:
            yield b": keep-alive\n\n"
            last_write = now
        await asyncio.sleep(settings.sse_poll_s)
