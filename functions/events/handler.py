"""Events Lambda: SQS batches (partial batch failures; bodies are producers' messages or
EventBridge events routed to the ingest queue), ingested like ``POST /events``; EMF metrics
per invocation (functions/events/invocation.py)."""

from __future__ import annotations

from typing import Any

from functions._runtime import Container, metrics
from functions.events.invocation import ingest

container = Container.from_environment()
ingest_metrics = metrics()


@container.entry_point
@ingest_metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return container.run(ingest(container, event, metrics=ingest_metrics))
