"""A drain: a worker with a deadline (a Lambda invocation) runs what it can, then stops.

Only rows whose run bound fits the time left are leased (the rest stay queued, their attempt
untouched, for a worker with more time). While nothing is due, the worker waits for the next
due instant it could still finish, instead of leaving work due within its budget to the next
wake-up. Runs still going at the deadline are cut off and their attempts count
(``work.cut_at_deadline``): due again at once for a worker with the time, dead-lettered after
the last attempt, so no run repeats for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from ordinaut import metrics
from ordinaut.store import work
from ordinaut.worker.outcomes import OUTCOMES

if TYPE_CHECKING:
    from ordinaut.worker.core import Worker

log = logging.getLogger("ordinaut.worker")

CUT_GRACE_S = 1.0  # at a drain's deadline: how long outcomes being written may still take


async def drain(worker: Worker, budget_s: float) -> int:
    """Lease and run until nothing more can be done within ``budget_s``; returns rows run."""
    deadline = time.monotonic() + budget_s
    total = 0
    while (left := deadline - time.monotonic()) > 0:
        want = worker.lease_size()
        if not want:
            await _wait_for_slot(worker, min(0.05, left))
            continue
        rows = await worker.lease(want, within_s=left)
        total += len(rows)
        worker.start(rows)
        if rows and len(rows) == want:
            continue
        pause = await _until_due(worker, deadline)
        if pause is None and not worker.in_flight:
            break
        # a run finishing frees a slot (and may queue follow-up work): lease again then
        pause = worker.settings.poll_interval_s if pause is None else pause
        await _wait_for_slot(worker, min(pause, worker.settings.poll_interval_s, left))
    await _cut_at_deadline(worker)
    await worker.shutdown(grace_s=0.0)
    return total


async def _until_due(worker: Worker, deadline: float) -> float | None:
    """Seconds until the next queued row this drain could still finish (0: lease now);
    None when there is none before ``deadline`` (a ``time.monotonic()`` instant)."""
    now = worker.clock.now()
    left = deadline - time.monotonic()
    next_at = await work.next_due_within(
        worker.pool,
        after=worker.last_lease_at,
        deadline=now + timedelta(seconds=left),
        default_bound_s=worker.settings.max_run_duration_s,
    )
    if next_at is None:
        return None
    return max(0.0, (next_at - now).total_seconds() + 0.0005)


async def _cut_at_deadline(worker: Worker) -> None:
    """The drain's time is up: outcomes being written get a moment, the rest are cancelled
    and their attempts counted."""
    in_flight, recording = worker.in_flight, worker.recording
    writing = {t for run_id, (_, t) in in_flight.items() if run_id in recording}
    if writing:
        await asyncio.wait(writing, timeout=CUT_GRACE_S)
    cut = [(run_id, token) for run_id, (token, _) in in_flight.items() if run_id not in recording]
    tasks = {t for _, t in in_flight.values()}
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=CUT_GRACE_S)
    if not cut:
        return
    rows = await work.cut_at_deadline(worker.pool, cut, now=worker.clock.now())
    for row in rows:
        if row.action == "dead_letter":
            OUTCOMES["dead_letter"].inc()
            metrics.DEAD_LETTERS.inc()
            worker.tally["dead_letter"] += 1
        else:
            OUTCOMES["retried"].inc()
            worker.tally["retry"] += 1
    log.warning(
        "drain deadline cut runs off; their attempts count",
        extra={"count": len(rows), "run_ids": [str(r.id) for r in rows]},
    )
    for run_id, _ in cut:
        in_flight.pop(run_id, None)


async def _wait_for_slot(worker: Worker, within_s: float) -> None:
    worker.slot_freed.clear()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(worker.slot_freed.wait(), within_s)
