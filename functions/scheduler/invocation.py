"""One scheduler invocation: ``tick()``, its metrics, wake-ups for the workers, outbox relay.

Wake-ups: when queued work falls due before the next tick, the work queue gets
min(ORDINAUT_WORKER_FANOUT_MAX, ceil(queued / rows a worker runs at once)) messages, at least
one, delayed until the earliest queued row is due (SQS DelaySeconds), so a worker does not
start, find nothing due yet and stop. Work due later than the next tick waits for that tick.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from functions._runtime import Container
from ordinaut import cloud
from ordinaut.config import Settings
from ordinaut.scheduler import TickResult, tick
from ordinaut.store import work

TICK_EVERY_S = 60  # the EventBridge Scheduler expression: rate(1 minute)
RELAY_WITHIN_S = 5.0


async def tick_and_wake(
    container: Container, metrics: Metrics, *, name: str, environ: Mapping[str, str]
) -> dict[str, Any]:
    """One tick; returns a summary for the invocation's result."""
    settings = container.settings
    async with container.database() as pool:
        result = await tick(pool, settings, container.clock, name=name)
        record(metrics, result)
        now = container.clock.now()
        queued, count, delay_s = await _wakeups(pool, settings, now, environ)
        queue_url = environ.get(cloud.WORK_QUEUE_ENV, "")
        sent = 0
        if queue_url and count:  # first: workers start while the relay runs
            sent = await asyncio.to_thread(cloud.send_wakeups, queue_url, count, delay_s=delay_s)
        relayed = await container.relay_outbox(pool, within_s=RELAY_WITHIN_S)
    return {
        "materialized": result.materialized,
        "rescued": result.rescued,
        "lag_s": round(result.lag_s, 3),
        "duration_ms": round(result.duration_ms, 1),
        "queued": queued,
        "wakeups": sent,
        "wakeup_delay_s": delay_s,
        "relayed": relayed,
    }


def record(metrics: Metrics, result: TickResult) -> None:
    """The tick as EMF metrics (only the Powertools ``service`` dimension)."""
    metrics.add_metric(name="DueWorkLagSeconds", unit=MetricUnit.Seconds, value=result.lag_s)
    metrics.add_metric(name="SlotsMaterialized", unit=MetricUnit.Count, value=result.materialized)
    metrics.add_metric(
        name="TickDurationMs", unit=MetricUnit.Milliseconds, value=result.duration_ms
    )
    metrics.add_metric(name="LeasesRescued", unit=MetricUnit.Count, value=result.rescued)


async def _wakeups(
    pool: asyncpg.Pool, settings: Settings, now: datetime, environ: Mapping[str, str]
) -> tuple[int, int, int]:
    """(queued rows, wake-ups to send, their delay in seconds)."""
    stats = await work.queue_stats(pool, now)
    next_due = await work.next_due_at(pool)
    if next_due is None:
        return stats["queued"], 0, 0
    delay_s = max(0, math.ceil((next_due - now).total_seconds()))
    if delay_s >= TICK_EVERY_S:
        return stats["queued"], 0, 0
    batch = min(settings.lease_batch, settings.worker_concurrency)
    count = cloud.wakeups_needed(stats["queued"], batch, cloud.fanout_max(environ))
    return stats["queued"], count, delay_s
