"""Events a run publishes (``event.publish``): collected while it runs, routed when it is
recorded.

``Emitter`` is the run's ``emit``: it refuses a publish past ``max_event_depth`` (a failed
step) and otherwise keeps the event. Only a successful attempt's events are written (a
failed attempt's are dropped with it: the retry emits them again); the recorder writes them
to the outbox and hands them to ``publish_emitted`` in the transaction that records the run.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ordinaut.errors import ValidationFailed
from ordinaut.ingest import ingest_on
from ordinaut.pipeline.tools import ToolError
from ordinaut.store import events as event_store
from ordinaut.store import outbox
from ordinaut.store.db import Connection
from ordinaut.store.quota import RunQuota
from ordinaut.store.rows import LeasedRun
from ordinaut.store.work import Outcome

log = logging.getLogger("ordinaut.worker")


class Emitter:
    """One attempt's ``emit(topic, payload)``; ``events`` holds what it published."""

    def __init__(self, row: LeasedRun, max_depth: int) -> None:
        self.row = row
        self.max_depth = max_depth
        # an event this run publishes is one hop deeper than the event that started it
        self.depth = (row.event_depth or 0) + 1
        self.events: list[outbox.OutboxEvent] = []

    def __call__(self, topic: str, payload: dict[str, Any]) -> None:
        depth, max_depth = self.depth, self.max_depth
        if max_depth > 0 and depth > max_depth:
            raise ToolError(
                "event_depth_exceeded",
                f"this run was started by an event {depth - 1} event.publish hops from "
                f"an event from outside; publishing would exceed max_event_depth "
                f"({max_depth})",
            )
        run_id = self.row.run_id
        self.events.append(
            outbox.OutboxEvent(
                event_type=f"custom.{topic}",
                tenant_id=self.row.owner_id,
                subject_id=run_id,
                payload={"topic": topic, "payload": payload, "run_id": str(run_id), "depth": depth},
            )
        )


async def publish_emitted(
    conn: Connection,
    outcome: Outcome,
    emitted: list[outbox.OutboxEvent],
    quota: RunQuota,
    refused: dict[uuid.UUID, str | None],
) -> bool:
    """Events a successful run published (``event.publish``) enter the events-in path in the
    run's completing transaction: subscribed tasks get their slots, or nothing happens at all.

    The event id is the slot's run id plus the position, so a slot that somehow succeeds twice
    publishes each event once. An owner deactivated or stripped of ``events:publish`` while
    the run went on publishes nothing (said in the log); ``refused`` keeps that check's answer
    per owner for the whole batch. Returns True when runs were queued.
    """
    wake = False
    for i, event in enumerate(emitted):
        body = event.payload
        if event.tenant_id is None or not event.event_type.startswith("custom."):
            continue
        if event.tenant_id not in refused:
            refused[event.tenant_id] = await event_store.publisher(conn, event.tenant_id)
        if refused[event.tenant_id] is not None:
            log.warning(
                "event.publish not routed: %s",
                refused[event.tenant_id],
                extra={"run_id": str(outcome.run_id), "topic": body["topic"]},
            )
            continue
        try:
            summary = await ingest_on(
                conn,
                tenant_id=event.tenant_id,
                topic=body["topic"],
                payload=body["payload"],
                event_id=f"run-{outcome.run_id}.{i}",
                now=outcome.finished_at,
                source="pipeline",
                depth=int(body.get("depth", 1)),
                quota=quota,
            )
        except ValidationFailed as exc:  # checked before any SQL: the transaction is intact
            log.warning(
                "event.publish topic not accepted by the event system; published out only",
                extra={"run_id": str(outcome.run_id), "error": exc.message},
            )
            continue
        wake |= bool(summary.get("_wake"))
    return wake
