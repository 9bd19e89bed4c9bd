"""Worker Lambda: each SQS wake-up (batch size 1, body ignored) drains due work for the
invocation's remaining time minus ORDINAUT_DRAIN_MARGIN_S, and emits the drain's EMF
metrics (functions/worker/invocation.py)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from functions._runtime import Container, metrics
from functions.worker.invocation import drain

container = Container.from_environment()
drain_metrics = metrics()


@container.entry_point
@drain_metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    budget_s = context.get_remaining_time_in_millis() / 1000 - container.settings.drain_margin_s
    if budget_s <= 0:
        drain_metrics.add_metric(name="DrainsSkipped", unit=MetricUnit.Count, value=1)
        return {"ran": 0, "budget_s": round(budget_s, 3), "relayed": 0}
    worker_id = f"lambda:{context.aws_request_id}"
    return container.run(drain(container, budget_s, worker_id=worker_id, metrics=drain_metrics))
