"""Events in: one path for POST /events, the SQS/EventBridge function and stream consumers.

The event is stored and one slot per subscribed task is materialized in the same
transaction, before the caller is told "accepted": a crash after that loses nothing, and the
unique (task, 'event:<id>') slot means a replayed event never runs a task twice.

Events belong to the publishing agent's tenant and trigger that tenant's event tasks. A topic
matching a pattern an admin declared shared (``POST /events/shared-topics``) also reaches other
tenants' tasks that subscribe with a ``shared:`` prefix (``shared:prices.*``): the event is
copied into each such tenant as ``<publisher id>#<event id>`` (``#`` is outside the client
alphabet, so no client id collides with a copy) and their runs read the copy. A task's
``payload.filter`` (``ordinaut.conditions``) must also let the event through. The publisher's
answer counts only its own tenant's tasks.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from itertools import groupby
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut import metrics, storable, tracing
from ordinaut.errors import ValidationFailed
from ordinaut.events import EVENT_RECEIVED, RUNS_THROTTLED
from ordinaut.pipeline import PipelineLimits
from ordinaut.pipeline.context import iso_utc
from ordinaut.pipeline.offload import off_loop
from ordinaut.store import agents, events, outbox, work
from ordinaut.store.db import Connection, connection
from ordinaut.store.quota import RunQuota
from ordinaut.store.rows import SlotTask
from ordinaut.taskdefs import SHARED_PREFIX
from ordinaut.triggers import filter_passes

log = logging.getLogger("ordinaut.ingest")
TOPIC_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9._:@/-]{1,200}$")
FILTER_LIMITS = PipelineLimits()
MAX_PAYLOAD_NODES = 100_000
# the owner's own run outcomes (notifier.py, notifications.topic)
LIFECYCLE_TOPICS = frozenset(("run.succeeded", "run.failed", "run.dead_letter"))


def check_event(topic: Any, event_id: Any, payload: Any = None, *, lifecycle: bool = False) -> None:
    """Reject topics, event ids and payloads PostgreSQL could not store (422 naming it).

    The lifecycle topics (``run.succeeded``, ``run.failed``, ``run.dead_letter``) are
    Ordinaut's own (``notifier.py``): no other source may publish them, so a task reacting to
    one can trust it happened."""
    problems = []
    if not isinstance(topic, str) or not TOPIC_RE.match(topic):
        problems.append(
            {
                "field": "topic",
                "message": "1-200 characters: letters, digits and . _ : - (no wildcards)",
            }
        )
    elif topic.startswith(SHARED_PREFIX):
        problems.append(
            {"field": "topic", "message": "shared: is a subscription prefix, not part of a topic"}
        )
    elif topic in LIFECYCLE_TOPICS and not lifecycle:
        problems.append(
            {
                "field": "topic",
                "message": f"{topic} is published by Ordinaut itself when a run ends; "
                "choose another topic",
            }
        )
    if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID_RE.match(event_id)):
        problems.append(
            {"field": "event_id", "message": "1-200 characters: letters, digits and . _ : @ / -"}
        )
    # Every source (API, stream, SQS, EventBridge, a pipeline): NaN read by a lenient JSON
    # parser would be stored as null, a NUL or lone surrogate fail in PostgreSQL.
    for problem in storable.problems(payload, ("payload",), max_nodes=MAX_PAYLOAD_NODES):
        problems.append({"field": storable.field_name(problem["loc"]), "message": problem["msg"]})
    if problems:
        raise ValidationFailed(problems[0]["message"], problems)


def _slot(task: asyncpg.Record, owner: UUID, event_id: str, now: datetime) -> work.NewSlot:
    return work.NewSlot.for_task(
        SlotTask.from_row(task),
        owner_id=owner,
        slot=f"event:{event_id}",
        trigger="event",
        event_id=event_id,
        scheduled_for=now,
        trace_context=tracing.current_traceparent(),  # POST /events: the request's trace
    )


def _passing(
    tasks: list[asyncpg.Record], event: dict[str, Any], now: datetime
) -> list[asyncpg.Record]:
    when = iso_utc(now)
    return [
        t
        for t in tasks
        if t["filter"] is None
        or filter_passes(
            t["filter"], event=event, params=t["params"], now=when, limits=FILTER_LIMITS
        )
    ]


async def _filtered(
    tasks: list[asyncpg.Record], event: dict[str, Any], now: datetime
) -> list[asyncpg.Record]:
    """``_passing``; filters are subscribers' expressions, so they are evaluated off the
    event loop (other requests and runs go on meanwhile), each within its budget and deadline."""
    if all(t["filter"] is None for t in tasks):
        return tasks
    return await off_loop(_passing, tasks, event, now)


def _received(tenant: UUID | None, event_id: str, topic: str, matched: int) -> outbox.OutboxEvent:
    return outbox.OutboxEvent(
        event_type=EVENT_RECEIVED,
        tenant_id=tenant,
        subject_id=None,
        payload={"event_id": event_id, "topic": topic, "tasks": matched},
    )


async def ingest_event(
    pool: asyncpg.Pool | Connection,
    *,
    tenant_id: UUID,
    topic: str,
    payload: Any,
    event_id: str | None,
    now: datetime,
    source: str = "api",
    max_runs_per_minute: int = 0,
    on_wake: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Store an event once and queue one run per matching event task; returns a summary.

    ``max_runs_per_minute`` (``Settings.max_runs_per_minute_per_agent``) bounds the runs each
    agent gets queued per minute; runs past it are refused and reported (``runs_refused``, and
    a ``runs.throttled`` lifecycle event to the agent that lost them). ``on_wake`` is awaited
    after the commit when runs were queued (a Lambda worker wake-up).

    ``pool`` may be a connection out of a pool instead (the request's, ``POST /events``):
    the statements then run on it, and a shared topic's transaction too.
    """
    check_event(topic, event_id, payload)
    event_id = event_id or str(uuid.uuid4())
    routed = await events.route_or_store(
        pool,
        tenant_id=tenant_id,
        event_id=event_id,
        topic=topic,
        payload=payload,
        source=source,
        now=now,
        received=_received(tenant_id, event_id, topic, 0),
    )
    return await _ingest_routed(
        pool,
        routed,
        tenant_id=tenant_id,
        topic=topic,
        payload=payload,
        event_id=event_id,
        now=now,
        source=source,
        max_runs_per_minute=max_runs_per_minute,
        on_wake=on_wake,
    )


async def ingest_granted(
    db: asyncpg.Pool | Connection,
    *,
    digest: bytes,
    at: datetime,
    scope: str,
    admit: Callable[[agents.Grant | None], UUID],
    topic: str,
    payload: Any,
    event_id: str | None,
    now: datetime,
    source: str = "api",
    max_runs_per_minute: int = 0,
    on_wake: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """``ingest_event`` for the agent of an access token (``POST /events``), checked in the
    same statement as the routing read: one round trip for an event nothing listens to.

    ``digest`` is the token's digest, ``at`` the request's instant, ``scope`` the one it needs;
    ``admit`` turns the grant read back into the publishing tenant, or raises (401, 403): the
    statement read and wrote nothing for a token that is not live or lacks ``scope``."""
    check_event(topic, event_id, payload)
    event_id = event_id or str(uuid.uuid4())
    grant, routed = await events.route_or_store_granted(
        db,
        digest=digest,
        at=at,
        scope=scope,
        event_id=event_id,
        topic=topic,
        payload=payload,
        source=source,
        now=now,
        # the tenant is the statement's own (the grant's agent); the row names none here
        received=_received(None, event_id, topic, 0),
    )
    tenant_id = admit(grant)
    if routed.publisher != tenant_id:
        # admit and the statement read the same grant: they cannot disagree on the publisher
        raise RuntimeError("the routing statement and the token check disagree on the publisher")
    return await _ingest_routed(
        db,
        routed,
        tenant_id=tenant_id,
        topic=topic,
        payload=payload,
        event_id=event_id,
        now=now,
        source=source,
        max_runs_per_minute=max_runs_per_minute,
        on_wake=on_wake,
    )


async def _ingest_routed(
    pool: asyncpg.Pool | Connection,
    routed: events.Routed,
    *,
    tenant_id: UUID,
    topic: str,
    payload: Any,
    event_id: str,
    now: datetime,
    source: str,
    max_runs_per_minute: int,
    on_wake: Callable[[], Awaitable[None]] | None,
) -> dict[str, Any]:
    """The rest of an ingest after ``events.route_or_store``."""
    if routed.stored:
        # Nothing listens (the usual event): that one statement stored it with its
        # event.received, or found the event id stored before.
        if routed.seq is None:
            return await _duplicate(pool, tenant_id, event_id)
        return {
            "event_id": event_id,
            "topic": topic,
            "duplicate": False,
            "runs_queued": 0,
            "runs_refused": 0,
            "tasks_matched": 0,
        }
    if not routed.shared:
        # Own tasks listen: their filters run here, then one statement writes everything,
        # atomic by itself, instead of a transaction of seven round trips.
        summary = await _ingest_own(
            pool,
            routed.own,
            tenant_id=tenant_id,
            topic=topic,
            payload=payload,
            event_id=event_id,
            now=now,
            source=source,
            max_runs_per_minute=max_runs_per_minute,
        )
        # the write statement woke the workers already when it queued runs
        if summary.pop("_wake", False) and on_wake is not None:
            await on_wake()
        return summary
    async with connection(pool) as conn:
        async with conn.transaction():
            quota = RunQuota(max_runs_per_minute, now)
            summary = await ingest_on(
                conn,
                tenant_id=tenant_id,
                topic=topic,
                payload=payload,
                event_id=event_id,
                now=now,
                source=source,
                quota=quota,
            )
            await quota.charge(conn)
        wake = summary.pop("_wake", False)
        if wake:
            await work.notify_work(conn)
    if wake and on_wake is not None:
        await on_wake()
    return summary


async def ingest_on(
    conn: Connection,
    *,
    tenant_id: UUID,
    topic: str,
    payload: Any,
    event_id: str | None,
    now: datetime,
    source: str,
    depth: int = 0,
    quota: RunQuota | None = None,
    share: bool = True,
) -> dict[str, Any]:
    """``ingest_event`` inside the caller's transaction (a run's completion publishing the
    events its pipeline emitted). ``_wake`` in the result says runs were queued.

    ``depth`` is the event's causation depth (0 from outside, one more per ``event.publish``
    hop). Runs are reserved against ``quota``; the caller charges it last in the transaction.
    ``share=False`` keeps the event in ``tenant_id`` even on a shared topic (lifecycle events
    about a tenant's own runs, ``notifier.py``)."""
    check_event(topic, event_id, payload, lifecycle=source == "lifecycle")
    quota = quota or RunQuota(0, now)
    event_id = event_id or str(uuid.uuid4())
    seq = await events.insert_event(
        conn,
        tenant_id=tenant_id,
        event_id=event_id,
        topic=topic,
        payload=payload,
        source=source,
        now=now,
        depth=depth,
    )
    if seq is None:
        return await _duplicate(conn, tenant_id, event_id)
    event = {"id": event_id, "topic": topic, "payload": payload}
    own = await events.matching_tasks(conn, tenant_id, topic)
    copies: list[tuple[UUID, list[asyncpg.Record]]] = []
    if share and await events.is_shared(conn, topic):
        own += [
            t for t in await events.shared_subscribers(conn, topic) if t["created_by"] == tenant_id
        ]
        copies = await _copy_shared(conn, tenant_id, topic, payload, event_id, now, depth)
    tasks = await _filtered(own, event, now)
    wanted = {tenant_id: [_slot(t, tenant_id, event_id, now) for t in tasks]}
    copy_id = f"{tenant_id}#{event_id}"
    for owner, subscribed in copies:
        wanted[owner] = [_slot(t, owner, copy_id, now) for t in subscribed]
    allowed = await quota.allow(conn, {owner: len(slots) for owner, slots in wanted.items()})
    slots = [s for owner, group in wanted.items() for s in group[: allowed[owner]]]
    created = await work.materialize(conn, slots, now=now)
    refused = {owner: len(group) - allowed[owner] for owner, group in wanted.items()}
    await events.set_matched(conn, seq, len(tasks))
    lifecycle = [_received(tenant_id, event_id, topic, len(tasks))]
    lifecycle += [_received(owner, copy_id, topic, len(group)) for owner, group in copies]
    lifecycle += [
        _throttled(owner, event_id if owner == tenant_id else copy_id, topic, n, quota.limit)
        for owner, n in sorted(refused.items())
        if n
    ]
    await outbox.append(conn, lifecycle, now=now)
    if any(refused.values()):
        metrics.RUNS_THROTTLED.inc(sum(refused.values()))
        log.warning(
            "runs refused: max_runs_per_minute_per_agent reached",
            extra={"event_id": event_id, "topic": topic, "refused": sum(refused.values())},
        )
    return {
        "event_id": event_id,
        "topic": topic,
        "duplicate": False,
        "runs_queued": sum(1 for s in slots if s.owner_id == tenant_id),
        "runs_refused": refused[tenant_id],
        "tasks_matched": len(tasks),
        "_wake": bool(created),
    }


async def _ingest_own(
    pool: asyncpg.Pool | Connection,
    own: list[asyncpg.Record],
    *,
    tenant_id: UUID,
    topic: str,
    payload: Any,
    event_id: str,
    now: datetime,
    source: str,
    max_runs_per_minute: int,
) -> dict[str, Any]:
    """``ingest_on`` for a topic no admin shared: the publisher's own ``own`` tasks only, whose
    filters are evaluated before anything is written; the event, its runs, the lifecycle
    events and the budget charge are then one statement (``events.ingest``), which writes
    nothing for an event id stored before."""
    tasks = await _filtered(own, {"id": event_id, "topic": topic, "payload": payload}, now)
    quota = RunQuota(max_runs_per_minute, now)
    wanted = [_slot(t, tenant_id, event_id, now) for t in tasks]
    allowed = (await quota.allow(pool, {tenant_id: len(wanted)}))[tenant_id] if wanted else 0
    refused = len(wanted) - allowed
    lifecycle = [_received(tenant_id, event_id, topic, len(tasks))]
    if refused:
        lifecycle.append(_throttled(tenant_id, event_id, topic, refused, quota.limit))
    seq, created = await events.ingest(
        pool,
        tenant_id=tenant_id,
        event_id=event_id,
        topic=topic,
        payload=payload,
        source=source,
        now=now,
        depth=0,
        tasks_matched=len(tasks),
        slots=wanted[:allowed],
        lifecycle=lifecycle,
        quota_window=quota.window,
        quota_charge=allowed if quota.limit > 0 else 0,
    )
    if seq is None:
        return await _duplicate(pool, tenant_id, event_id)
    if refused:
        metrics.RUNS_THROTTLED.inc(refused)
        log.warning(
            "runs refused: max_runs_per_minute_per_agent reached",
            extra={"event_id": event_id, "topic": topic, "refused": refused},
        )
    return {
        "event_id": event_id,
        "topic": topic,
        "duplicate": False,
        "runs_queued": allowed,
        "runs_refused": refused,
        "tasks_matched": len(tasks),
        "_wake": created > 0,
    }


async def _duplicate(
    conn: Connection | asyncpg.Pool, tenant_id: UUID, event_id: str
) -> dict[str, Any]:
    """The answer for an event id the tenant published before: nothing queued again."""
    stored = await events.get_event(conn, tenant_id, event_id)
    assert stored is not None
    return {
        "event_id": event_id,
        "topic": stored["topic"],
        "duplicate": True,
        "runs_queued": 0,
        "runs_refused": 0,
        "tasks_matched": stored["tasks_matched"],
    }


def _throttled(
    owner: UUID, event_id: str, topic: str, refused: int, limit: int
) -> outbox.OutboxEvent:
    return outbox.OutboxEvent(
        event_type=RUNS_THROTTLED,
        tenant_id=owner,
        subject_id=None,
        payload={
            "event_id": event_id,
            "topic": topic,
            "refused": refused,
            "limit": "max_runs_per_minute_per_agent",
            "max": limit,
        },
    )


async def _copy_shared(
    conn: Connection,
    publisher: UUID,
    topic: str,
    payload: Any,
    event_id: str,
    now: datetime,
    depth: int,
) -> list[tuple[UUID, list[asyncpg.Record]]]:
    """Copy a shared event into every other tenant with matching ``shared:`` tasks (a copy
    keeps the original's depth); returns each new copy's owner and the tasks it triggers."""
    subscribers = [
        t for t in await events.shared_subscribers(conn, topic) if t["created_by"] != publisher
    ]
    copy_id = f"{publisher}#{event_id}"
    event = {"id": copy_id, "topic": topic, "payload": payload}
    copies: list[tuple[UUID, list[asyncpg.Record]]] = []
    for owner, group in groupby(subscribers, key=lambda t: t["created_by"]):
        tasks = await _filtered(list(group), event, now)
        if not tasks:
            continue
        new = await events.insert_copy(
            conn,
            tenant_id=owner,
            event_id=copy_id,
            topic=topic,
            payload=payload,
            now=now,
            tasks_matched=len(tasks),
            origin_tenant=publisher,
            origin_event_id=event_id,
            depth=depth,
        )
        if new:
            copies.append((owner, tasks))
    return copies
