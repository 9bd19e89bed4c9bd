"""Events in: one path for POST /events, the SQS/EventBridge function and stream consumers.

The event is stored and one slot per subscribed task is materialized in the same
transaction, before the caller is told "accepted": a crash after that loses nothing, and the
unique (task, 'event:<id>') slot means a replayed event never runs a task twice.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.errors import ValidationFailed
from ordinaut.slots import idempotency_key
from ordinaut.store import events, outbox, work

TOPIC_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9._:@/-]{1,200}$")


def check_event(topic: Any, event_id: Any) -> None:
    """Reject topics and event ids outside the documented alphabet (422 naming the field)."""
    problems = []
    if not isinstance(topic, str) or not TOPIC_RE.match(topic):
        problems.append(
            {
                "field": "topic",
                "message": "1-200 characters: letters, digits and . _ : - (no wildcards)",
            }
        )
    if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID_RE.match(event_id)):
        problems.append(
            {"field": "event_id", "message": "1-200 characters: letters, digits and . _ : @ / -"}
        )
    if problems:
        raise ValidationFailed(problems[0]["message"], problems)


async def ingest_event(
    pool: asyncpg.Pool,
    *,
    tenant_id: UUID,
    topic: str,
    payload: Any,
    event_id: str | None,
    now: datetime,
    source: str = "api",
) -> dict[str, Any]:
    """Store an event once and queue one run per matching event task; returns a summary."""
    check_event(topic, event_id)
    event_id = event_id or str(uuid.uuid4())
    async with pool.acquire() as conn:
        async with conn.transaction():
            seq = await events.insert_event(
                conn,
                tenant_id=tenant_id,
                event_id=event_id,
                topic=topic,
                payload=payload,
                source=source,
                now=now,
            )
            if seq is None:
                stored = await events.get_event(conn, tenant_id, event_id)
                assert stored is not None
                return {
                    "event_id": event_id,
                    "topic": stored["topic"],
                    "duplicate": True,
                    "runs_queued": 0,
                    "tasks_matched": stored["tasks_matched"],
                }
            tasks = await events.matching_tasks(conn, tenant_id, topic)
            slot = f"event:{event_id}"
            created = await work.materialize(
                conn,
                [
                    work.NewSlot(
                        run_id=uuid.uuid4(),
                        task_id=t["id"],
                        owner_id=tenant_id,
                        slot=slot,
                        trigger="event",
                        event_id=event_id,
                        scheduled_for=now,
                        run_at=now,
                        priority=t["priority"],
                        max_attempts=t["max_retries"] + 1,
                        concurrency_key=t["concurrency_key"],
                        buffer_one=t["overlap_policy"] == "buffer_one",
                        idempotency_key=idempotency_key(t["id"], slot),
                    )
                    for t in tasks
                ],
                now=now,
            )
            await events.set_matched(conn, seq, len(tasks))
            await outbox.append(
                conn,
                [
                    outbox.OutboxEvent(
                        event_type="event.received",
                        tenant_id=tenant_id,
                        subject_id=None,
                        payload={"event_id": event_id, "topic": topic, "tasks": len(tasks)},
                    )
                ],
                now=now,
            )
        if created:
            await work.notify_work(conn)
    return {
        "event_id": event_id,
        "topic": topic,
        "duplicate": False,
        "runs_queued": len(created),
        "tasks_matched": len(tasks),
    }
