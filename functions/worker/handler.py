"""Worker Lambda: each SQS wake-up (batch size 1, body ignored) drains due work for the
invocation's remaining time minus ORDINAUT_DRAIN_MARGIN_S."""

from __future__ import annotations

from typing import Any

from functions._runtime import Container
from functions.worker.invocation import drain

container = Container.from_environment()


@container.entry_point
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    budget_s = context.get_remaining_time_in_millis() / 1000 - container.settings.drain_margin_s
    if budget_s <= 0:
        return {"ran": 0, "budget_s": round(budget_s, 3), "relayed": 0}
    worker_id = f"lambda:{context.aws_request_id}"
    return container.run(drain(container, budget_s, worker_id=worker_id))
