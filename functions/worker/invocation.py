"""One worker invocation: ``Worker.drain(budget)`` driven the way ``run_worker`` drives it.

Like the long-running worker, this driver heartbeats while runs are in flight: a run that
lasts longer than a lease keeps it, instead of being rescued and run a second time by another
worker. ``drain`` leases only runs whose bound fits the time left; one still running when the
budget ends is cut off and its attempt counts (``drain`` does that), and if the container dies
first, the lease expires and the tick rescues the run: nothing stays ``running`` and nothing
repeats for ever. Afterwards the outbox is relayed to Redis, and the ended runs' notifications
and lifecycle events are routed and sent (``ordinaut.notifier``), within what is left of the
margin.

Metrics (EMF, one document per invocation, dimension ``service``): ``RunsSucceeded``,
``RunsFailed`` (attempts that failed: retried, failed for good or dead-lettered, a deadline
cut included), ``RunsDeadLettered``, ``StartLagMs`` (the worst start lag of the rows this
invocation leased, from their due instant) and ``DrainsFailed`` (the database unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from functions._runtime import CONNECTION_ERRORS, Container
from ordinaut import notifier
from ordinaut.store import heartbeats
from ordinaut.worker import Worker

FAILED = ("retry", "failed", "dead_letter")

log = logging.getLogger("ordinaut.worker")

RELAY_WITHIN_S = 3.0
DATABASE_ERRORS: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)
OUTCOME_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *DATABASE_ERRORS)


async def drain(
    container: Container, budget_s: float, *, worker_id: str, metrics: Metrics | None = None
) -> dict[str, Any]:
    """Run due work for ``budget_s`` seconds; returns a summary (and records ``metrics``,
    also when the database could not be reached)."""
    settings = container.settings
    worker: Worker | None = None
    try:
        async with container.database() as pool:
            worker = Worker(pool, settings, container.clock, worker_id=worker_id)
            beating = asyncio.create_task(_heartbeats(worker, settings.heartbeat_s))
            try:
                ran = await worker.drain(budget_s)
            finally:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
                with contextlib.suppress(*DATABASE_ERRORS):
                    await heartbeats.forget_worker(pool, worker_id)
            within_s = min(RELAY_WITHIN_S, settings.drain_margin_s / 2)
            relayed = await container.relay_outbox(pool, within_s=within_s)
            routed, notified = await route_outcomes(container, pool, within_s=within_s)
    finally:
        if metrics is not None:
            record(metrics, worker)
    return {
        "ran": ran,
        "budget_s": round(budget_s, 3),
        "relayed": relayed,
        "outcomes_routed": routed,
        "notifications_sent": notified,
    }


async def route_outcomes(
    container: Container, pool: asyncpg.Pool, *, within_s: float
) -> tuple[int, int]:
    """Notifications and lifecycle events of ended runs (``ordinaut.notifier``), within
    ``within_s``: what is left stays queued for the next invocation or any worker."""
    routed = notified = 0
    if within_s <= 0:
        return routed, notified
    try:
        async with asyncio.timeout(within_s):
            deliverer = notifier.Deliverer(pool, container.settings)
            routed, notified = await notifier.relay(
                pool, deliverer, container.clock.now, container.settings
            )
    except OUTCOME_ERRORS as exc:
        log.warning("run outcomes paused", extra={"error": repr(exc)})
    return routed, notified


async def _heartbeats(worker: Worker, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await worker.heartbeat()
        except DATABASE_ERRORS as exc:
            log.warning("heartbeat failed", extra={"error": repr(exc)})


def record(metrics: Metrics, worker: Worker | None) -> None:
    """The drain's outcomes as EMF metrics (only the Powertools ``service`` dimension);
    ``worker`` None: the database could not be reached (``DrainsFailed``)."""
    if worker is None:
        metrics.add_metric(name="DrainsFailed", unit=MetricUnit.Count, value=1)
        return
    tally = worker.tally
    metrics.add_metric(name="RunsSucceeded", unit=MetricUnit.Count, value=tally["succeeded"])
    metrics.add_metric(
        name="RunsFailed", unit=MetricUnit.Count, value=sum(tally[s] for s in FAILED)
    )
    metrics.add_metric(name="RunsDeadLettered", unit=MetricUnit.Count, value=tally["dead_letter"])
    leased, _, worst_s = worker.start_lag_s
    if leased:
        metrics.add_metric(
            name="StartLagMs", unit=MetricUnit.Milliseconds, value=round(worst_s * 1000, 1)
        )
