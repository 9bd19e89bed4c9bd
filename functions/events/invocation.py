"""One events invocation: an SQS batch or an EventBridge event into ``ingest_event``, the path
``POST /events`` takes (stored once per (tenant, event id); one run per subscribed task).

* SQS (batch, ``ReportBatchItemFailures``): each body is
  ``{"tenant_id", "topic", "payload"?, "event_id"?}``. A record that is not such an object or
  fails to ingest is listed in ``batchItemFailures`` (SQS redelivers it, then moves it to the
  DLQ); the others are done. Without an ``event_id`` the SQS message id is the event id, so a
  redelivered message is accepted once.
* EventBridge: ``detail-type`` is the topic, ``detail`` the payload, ``detail.tenant_id`` the
  tenant, ``detail.event_id`` (else the EventBridge event id) the event id. A failure raises:
  Lambda retries the asynchronous invocation, then sends it to the DLQ.

The queue and the bus are the trust boundary: whoever may send to them may publish for any
tenant.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from functions._runtime import CONNECTION_ERRORS, Container
from ordinaut.errors import OrdinautError

log = logging.getLogger("ordinaut.events.ingress")

SQS_FIELDS = frozenset({"tenant_id", "topic", "payload", "event_id"})
LOGGED = ("event_id", "topic", "duplicate", "runs_queued")  # of ingest_event's summary


class BadEvent(ValueError):
    """An event that can never be ingested as sent."""


@dataclass(frozen=True)
class Incoming:
    tenant_id: UUID
    topic: Any  # checked by ingest_event
    payload: Any
    event_id: Any


def _tenant(value: Any) -> UUID:
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise BadEvent("tenant_id must be an agent id (a UUID)")


def from_sqs_body(body: Any, message_id: str) -> Incoming:
    """The event in one SQS message body."""
    try:
        doc = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        raise BadEvent("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise BadEvent("the body must be a JSON object")
    unknown = sorted(set(doc) - SQS_FIELDS)
    if unknown:
        raise BadEvent(f"unknown field(s) {', '.join(unknown)}; expected {sorted(SQS_FIELDS)}")
    return Incoming(
        tenant_id=_tenant(doc.get("tenant_id")),
        topic=doc.get("topic"),
        payload=doc.get("payload", {}),
        event_id=doc.get("event_id") or message_id,
    )


def from_eventbridge(event: dict[str, Any]) -> Incoming:
    """The event in an EventBridge event."""
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadEvent("detail must be a JSON object")
    return Incoming(
        tenant_id=_tenant(detail.get("tenant_id")),
        topic=event.get("detail-type"),
        payload=detail,
        event_id=detail.get("event_id") or event.get("id"),
    )


def is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and all(
        isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records
    )


async def ingest(container: Container, event: Any) -> dict[str, Any]:
    """Ingest every event in ``event``: the SQS partial-batch response or the ingest summary."""
    if is_sqs_batch(event):
        return await _sqs_batch(container, event["Records"])
    if isinstance(event, dict) and "detail-type" in event:
        return await _one(container, from_eventbridge(event), source="eventbridge")
    raise BadEvent("expected an SQS batch or an EventBridge event")


async def _one(container: Container, incoming: Incoming, *, source: str) -> dict[str, Any]:
    from ordinaut.ingest import ingest_event

    async with container.database() as pool:
        return await ingest_event(
            pool,
            tenant_id=incoming.tenant_id,
            topic=incoming.topic,
            payload=incoming.payload,
            event_id=incoming.event_id,
            now=container.clock.now(),
            source=source,
            max_runs_per_minute=container.settings.max_runs_per_minute_per_agent,
        )


async def _sqs_batch(container: Container, records: list[dict[str, Any]]) -> dict[str, Any]:
    failures: list[dict[str, str]] = []
    for index, record in enumerate(records):
        message_id = str(record.get("messageId", ""))
        try:
            summary = await _one(
                container, from_sqs_body(record.get("body"), message_id), source="sqs"
            )
        except CONNECTION_ERRORS as exc:
            # The database is gone: this record and the rest go back to the queue.
            log.warning("database unavailable; batch returned", extra={"error": repr(exc)})
            failures.extend(
                {"itemIdentifier": str(r.get("messageId", ""))} for r in records[index:]
            )
            break
        except (BadEvent, OrdinautError, asyncpg.PostgresError) as exc:
            message = exc.message if isinstance(exc, OrdinautError) else str(exc)
            log.warning("event rejected", extra={"message_id": message_id, "error": message})
            failures.append({"itemIdentifier": message_id})
        except Exception:
            log.exception("event ingest failed", extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
        else:
            log.info(
                "event ingested",
                extra={"message_id": message_id, **{k: summary[k] for k in LOGGED}},
            )
    return {"batchItemFailures": failures}
