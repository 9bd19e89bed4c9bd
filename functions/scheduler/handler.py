"""Scheduler Lambda: EventBridge Scheduler invokes it every minute; each invocation is one tick.

The event (``source``, ``scheduled_time``, ``execution_id``) is informational: the database
clock decides what is due.
"""

from __future__ import annotations

import os
from typing import Any

from functions._runtime import Container, metrics
from functions.scheduler.invocation import tick_and_wake

container = Container.from_environment()
tick_metrics = metrics()


@container.entry_point
@tick_metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = f"lambda:{context.function_name}"
    return container.run(tick_and_wake(container, tick_metrics, name=name, environ=os.environ))
