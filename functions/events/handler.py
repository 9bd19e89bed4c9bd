"""Events Lambda: SQS batches (partial batch failures) and EventBridge events, ingested like
``POST /events``."""

from __future__ import annotations

from typing import Any

from functions._runtime import Container
from functions.events.invocation import ingest

container = Container.from_environment()


@container.entry_point
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return container.run(ingest(container, event))
