"""One worker invocation: ``Worker.drain(budget)`` driven the way ``run_worker`` drives it.

Like the long-running worker, this driver heartbeats while runs are in flight: a run that
lasts longer than a lease keeps it, instead of being rescued and run a second time by another
worker. What is still running when the budget ends is released (``drain`` does that), and if
the container dies first, the lease expires and the tick rescues the run: nothing stays
``running``. Afterwards the outbox is relayed to Redis within what is left of the margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from functions._runtime import CONNECTION_ERRORS, Container
from ordinaut.store import heartbeats
from ordinaut.worker import Worker

log = logging.getLogger("ordinaut.worker")

RELAY_WITHIN_S = 3.0
DATABASE_ERRORS: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


async def drain(container: Container, budget_s: float, *, worker_id: str) -> dict[str, Any]:
    """Run due work for ``budget_s`` seconds; returns a summary."""
    settings = container.settings
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
    return {"ran": ran, "budget_s": round(budget_s, 3), "relayed": relayed}


async def _heartbeats(worker: Worker, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await worker.heartbeat()
        except DATABASE_ERRORS as exc:
            log.warning("heartbeat failed", extra={"error": repr(exc)})
