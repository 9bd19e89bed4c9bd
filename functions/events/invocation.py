"""One events invocation: an SQS batch (or a direct EventBridge event) into ``ingest_event``,
the path ``POST /events`` takes (stored once per (tenant, event id); one run per subscribed
task).

* SQS (batch, ``ReportBatchItemFailures``), the one path in production: each body is either
  ``{"tenant_id", "topic", "payload"?, "event_id"?}`` (a producer's message) or an EventBridge
  event as the bus's rule delivers it to the ingest queue (``detail-type`` is the topic,
  ``detail`` the payload, ``detail.tenant_id`` the tenant, ``detail.event_id`` else the
  EventBridge id the event id). Without an ``event_id`` the SQS message id is the event id, so
  a redelivered message is accepted once.
* A record that can never be ingested as sent (not JSON, missing or unknown fields, a tenant
  that does not exist or may not publish, a topic or payload outside the limits) is parked at
  once: moved to the dead stream (``ordinaut.events.DEAD_STREAM``, like the ingest consumer's
  parked entries) with the reason, counted (``EventsParked``) and *not* listed as a failure, so
  SQS does not deliver it four more times. Only a record that could not be parked (Redis
  down) is listed: the queue's redrive policy parks it in the DLQ instead.
* A transient failure (the database unreachable, anything unexpected) is listed in
  ``batchItemFailures``: SQS redelivers it, then moves it to the DLQ.
* A direct EventBridge invocation (a rule targeting the function) still works; a failure
  raises, so Lambda retries the asynchronous invocation.
* When runs were queued, one wake-up per invocation goes to the worker queue (``Waker``).

The queue and the bus are the trust boundary: whoever may send to them may publish for any
tenant.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from functions._runtime import CONNECTION_ERRORS, RELAY_ERRORS, Container
from ordinaut import cloud
from ordinaut.consumer import MAX_ERROR_LENGTH
from ordinaut.errors import NotFound, OrdinautError, ValidationFailed
from ordinaut.events import DEAD_STREAM
from ordinaut.pipeline.context import iso_utc

log = logging.getLogger("ordinaut.events.ingress")

SQS_FIELDS = frozenset({"tenant_id", "topic", "payload", "event_id"})
LOGGED = ("event_id", "topic", "duplicate", "runs_queued")  # of ingest_event's summary
MAX_PARKED_BODY = 64 * 1024  # characters of a parked record's body kept in the dead stream


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


def from_sqs_body(body: Any, message_id: str) -> tuple[Incoming, str]:
    """The event in one SQS message body, and its source ("sqs" or "eventbridge")."""
    try:
        doc = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        raise BadEvent("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise BadEvent("the body must be a JSON object")
    if "detail-type" in doc:  # an EventBridge event routed to the queue by a rule
        incoming = from_eventbridge(doc)
        return incoming, "eventbridge"
    unknown = sorted(set(doc) - SQS_FIELDS)
    if unknown:
        raise BadEvent(f"unknown field(s) {', '.join(unknown)}; expected {sorted(SQS_FIELDS)}")
    incoming = Incoming(
        tenant_id=_tenant(doc.get("tenant_id")),
        topic=doc.get("topic"),
        payload=doc.get("payload", {}),
        event_id=doc.get("event_id") or message_id,
    )
    return incoming, "sqs"


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


class _Batch:
    """One invocation's bookkeeping: whether runs were queued, and the outcome counts."""

    def __init__(self) -> None:
        self.queued_runs = False
        self.counts = {"ingested": 0, "duplicate": 0, "parked": 0, "failed": 0}

    async def queued(self) -> None:  # ingest_event's on_wake: after the commit
        self.queued_runs = True


async def ingest(
    container: Container, event: Any, *, metrics: Metrics | None = None
) -> dict[str, Any]:
    """Ingest every event in ``event``: the SQS partial-batch response or the ingest summary."""
    batch = _Batch()
    try:
        if is_sqs_batch(event):
            return await _sqs_batch(container, event["Records"], batch)
        if isinstance(event, dict) and "detail-type" in event:
            summary = await _one(container, from_eventbridge(event), "eventbridge", batch)
            batch.counts["duplicate" if summary["duplicate"] else "ingested"] += 1
            return summary
        raise BadEvent("expected an SQS batch or an EventBridge event")
    finally:
        if batch.queued_runs:
            await _wake(container, metrics)
        if metrics is not None:
            record(metrics, batch.counts)


def record(metrics: Metrics, counts: dict[str, int]) -> None:
    """The invocation's outcomes as EMF metrics (only the Powertools ``service`` dimension)."""
    for name, key in (
        ("EventsIngested", "ingested"),
        ("EventsDuplicate", "duplicate"),
        ("EventsParked", "parked"),
        ("EventsFailed", "failed"),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts[key])


async def _wake(container: Container, metrics: Metrics | None) -> None:
    url = container.settings.work_queue_url
    if not url:
        return
    waker = container.waker
    if waker is None:

        def failed() -> None:
            if metrics is not None:
                metrics.add_metric(name="WakeupsFailed", unit=MetricUnit.Count, value=1)

        waker = container.waker = cloud.Waker(url, source="ordinaut.events", on_failure=failed)
    await waker.wake()


async def _one(
    container: Container, incoming: Incoming, source: str, batch: _Batch
) -> dict[str, Any]:
    from ordinaut.ingest import ingest_event
    from ordinaut.store.agents import get_agent

    async with container.database() as pool:
        # The queue is the trust boundary (no scope check), but the tenant must be an active agent.
        try:
            tenant = await get_agent(pool, incoming.tenant_id)
        except NotFound:
            raise BadEvent(f"unknown tenant: {incoming.tenant_id}") from None
        if not tenant.is_active:
            raise BadEvent(f"tenant is deactivated: {incoming.tenant_id}")
        return await ingest_event(
            pool,
            tenant_id=incoming.tenant_id,
            topic=incoming.topic,
            payload=incoming.payload,
            event_id=incoming.event_id,
            now=container.clock.now(),
            source=source,
            max_runs_per_minute=container.settings.max_runs_per_minute_per_agent,
            on_wake=batch.queued,
        )


async def _park(container: Container, record: dict[str, Any], reason: str) -> bool:
    """Move a record that can never be ingested to the dead stream; False when Redis is not
    there to take it (the record is then left to SQS's redrive policy)."""
    client = container.redis()
    if client is None:
        return False
    body = record.get("body")
    dead = {
        "message_id": str(record.get("messageId", "")),
        "source": "sqs",
        "queue": str(record.get("eventSourceARN", "")),
        "error": reason[:MAX_ERROR_LENGTH],
        "parked_at": iso_utc(container.clock.now()),
        "body": (body if isinstance(body, str) else orjson.dumps(body).decode())[:MAX_PARKED_BODY],
    }
    try:
        await client.xadd(
            DEAD_STREAM,
            dead,  # type: ignore[arg-type]
            maxlen=container.settings.stream_maxlen,
            approximate=True,
        )
    except RELAY_ERRORS as exc:
        log.warning("could not park an event; SQS keeps it", extra={"error": repr(exc)})
        return False
    return True


async def _sqs_batch(
    container: Container, records: list[dict[str, Any]], batch: _Batch
) -> dict[str, Any]:
    failures: list[dict[str, str]] = []
    for index, record in enumerate(records):
        message_id = str(record.get("messageId", ""))
        try:
            incoming, source = from_sqs_body(record.get("body"), message_id)
            summary = await _one(container, incoming, source, batch)
        except CONNECTION_ERRORS as exc:
            # The database is gone: this record and the rest go back to the queue.
            log.warning("database unavailable; batch returned", extra={"error": repr(exc)})
            rest = records[index:]
            failures.extend({"itemIdentifier": str(r.get("messageId", ""))} for r in rest)
            batch.counts["failed"] += len(rest)
            break
        except (BadEvent, ValidationFailed) as exc:
            reason = exc.message if isinstance(exc, OrdinautError) else str(exc)
            if await _park(container, record, reason):
                batch.counts["parked"] += 1
                log.warning(
                    "event parked: it can never be ingested",
                    extra={"message_id": message_id, "error": reason},
                )
            else:
                batch.counts["failed"] += 1
                failures.append({"itemIdentifier": message_id})
        except Exception:
            log.exception("event ingest failed", extra={"message_id": message_id})
            batch.counts["failed"] += 1
            failures.append({"itemIdentifier": message_id})
        else:
            batch.counts["duplicate" if summary["duplicate"] else "ingested"] += 1
            log.info(
                "event ingested",
                extra={"message_id": message_id, **{k: summary[k] for k in LOGGED}},
            )
    return {"batchItemFailures": failures}
