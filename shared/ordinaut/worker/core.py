"""The ``Worker``: lease due rows with SKIP LOCKED, start them, record their outcomes fenced on
the lease, keep the leases alive, give back what is left.

Rows of one task that must not overlap run one after another in one asyncio task (overlap
grouping); each row's attempt is run by ``Attempts``, classified by ``outcomes`` and written
by the ``Recorder``. No database transaction is open while a pipeline runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections import Counter, defaultdict

import asyncpg

from ordinaut import logs, metrics, tracing
from ordinaut.clock import Clock
from ordinaut.config import Settings
from ordinaut.pipeline import PipelineLimits
from ordinaut.pipeline.tools import ToolRegistry
from ordinaut.store import heartbeats, outbox, work
from ordinaut.store.rows import LeasedRun
from ordinaut.toolbox import build_registry
from ordinaut.worker import drain as draining
from ordinaut.worker.attempt import Attempts
from ordinaut.worker.outcomes import OUTCOMES, RetryPolicy, classify, count, not_run, skipped
from ordinaut.worker.publish import Emitter
from ordinaut.worker.recorder import Recorder

log = logging.getLogger("ordinaut.worker")


class Worker:
    """One process's worker state: pool, clock, tools and the runs in flight."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        clock: Clock,
        *,
        worker_id: str | None = None,
        registry: ToolRegistry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.registry = registry or build_registry(settings)
        self.limits = PipelineLimits.from_settings(settings)
        self.retry_policy = RetryPolicy.from_settings(settings, rng or random.Random())
        self.attempts = Attempts(pool, settings, clock, self.registry, self.limits)
        self.conditions = self.attempts.conditions
        # run_id -> (lease_token, asyncio task)
        self.in_flight: dict[uuid.UUID, tuple[uuid.UUID, asyncio.Task[None]]] = {}
        self.started_at = clock.now()
        self.slot_freed = asyncio.Event()
        # a write retried past half the lease could no longer land before a rescue
        self.recorder = Recorder(
            pool,
            retry_for_s=settings.lease_seconds / 2,
            max_runs_per_minute=settings.max_runs_per_minute_per_agent,
        )
        self.recording: set[uuid.UUID] = set()
        self.last_lease_at = self.started_at
        # what this worker did, for a Lambda drain's metrics: outcomes recorded by status,
        # and the start lag of the rows it leased (count, total, worst)
        self.tally: Counter[str] = Counter()
        self.start_lag_s = [0, 0.0, 0.0]

    # -- leasing -------------------------------------------------------------------------

    async def lease(self, limit: int, *, within_s: float | None = None) -> list[LeasedRun]:
        """Lease up to ``limit`` due rows; with ``within_s``, only rows whose run bound fits."""
        now = self.last_lease_at = self.clock.now()
        with tracing.span("worker.lease", attributes={"ordinaut.worker": self.worker_id}) as span:
            async with self.pool.acquire() as conn:
                rows = await work.lease(
                    conn,
                    now=now,
                    limit=limit,
                    lease_s=self.settings.lease_seconds,
                    worker_id=self.worker_id,
                    max_running_per_owner=self.settings.max_running_per_agent,
                    within_s=within_s,
                    default_bound_s=self.settings.max_run_duration_s,
                )
            span.set_attribute("ordinaut.leased", len(rows))
        if rows:
            metrics.LEASES.inc(len(rows))
            lag = self.start_lag_s
            for r in rows:
                lag_s = max(0.0, (now - r.run_at).total_seconds())
                metrics.START_LAG.observe(lag_s)
                lag[0] += 1
                lag[1] += lag_s
                lag[2] = max(lag[2], lag_s)
            try:
                await self.attempts.pipelines.load(rows)  # one read for every new task version
            except Exception as exc:
                # the rows are ours now and must start: each run retries its own read, and
                # one that cannot is a failed attempt (Attempts.run)
                log.warning("could not read task pipelines", extra={"error": repr(exc)})
        return rows

    def lease_size(self) -> int:
        """How many rows to lease now: 0 while most slots are busy, so leases stay batched.

        Leasing a row or two each time one run finishes would cost a commit per run; waiting
        until half the slots are free keeps ~batch-size leases under load (bench/README.md).
        """
        free = self.settings.worker_concurrency - len(self.in_flight)
        batch = min(self.settings.lease_batch, self.settings.worker_concurrency)
        if not self.in_flight:
            return max(1, min(free, batch))
        return min(free, batch) if free >= max(1, batch // 2) else 0

    # -- starting: overlap grouping ------------------------------------------------------

    def start(self, rows: list[LeasedRun]) -> list[asyncio.Task[None]]:
        """Start leased rows; rows of one task that must not overlap run one after another."""
        groups: dict[uuid.UUID, list[LeasedRun]] = defaultdict(list)
        started: list[asyncio.Task[None]] = []
        for row in rows:
            if row.overlap_policy == "allow":
                started.append(self._spawn([row]))
            else:
                groups[row.task_id].append(row)
        for group in groups.values():
            started.append(self._spawn(group))
        return started

    def _spawn(self, rows: list[LeasedRun]) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run_group(rows))
        task.add_done_callback(_report_crash)
        for row in rows:
            self.in_flight[row.run_id] = (row.lease_token, task)
        metrics.WORKER_IN_FLIGHT.set(len(self.in_flight))
        return task

    async def _run_group(self, rows: list[LeasedRun]) -> None:
        try:
            if len(rows) > 1 and rows[0].overlap_policy == "buffer_one":
                # Slots that were all due together: the oldest runs, the rest were buffered
                # beyond the one that buffer_one keeps.
                rows, extra = rows[:1], rows[1:]
                for row in extra:
                    outcome = skipped(row, self.clock.now(), "buffer_one keeps one waiting slot")
                    count(outcome)
                    await self.record(outcome, [])
                    self.in_flight.pop(row.run_id, None)
            for row in rows:
                try:
                    with tracing.span(
                        "run",
                        parent=row.trace_context,
                        attributes={
                            "ordinaut.run_id": str(row.run_id),
                            "ordinaut.task_id": str(row.task_id),
                            "ordinaut.attempt": row.attempt,
                            "ordinaut.trigger": row.trigger,
                        },
                    ) as span:
                        outcome, events = await self._execute(row)
                        span.set_attribute("ordinaut.outcome", outcome.status)
                        # From here the row's fate is being written (fenced): a heartbeat must
                        # neither extend nor "lose" a lease the completion is deleting.
                        self.recording.add(row.run_id)
                        await self.record(outcome, events)
                finally:
                    self.recording.discard(row.run_id)
                    self.in_flight.pop(row.run_id, None)
                    metrics.WORKER_IN_FLIGHT.set(len(self.in_flight))
                    self.slot_freed.set()
        except asyncio.CancelledError:
            for row in rows:
                self.in_flight.pop(row.run_id, None)
            raise

    # -- running -------------------------------------------------------------------------

    async def _execute(self, row: LeasedRun) -> tuple[work.Outcome, list[outbox.OutboxEvent]]:
        """Run one leased row's attempt; its outcome and the events it published."""
        ctx_token = logs.bind(task_id=str(row.task_id), run_id=str(row.run_id), attempt=row.attempt)
        try:
            refused = not_run(row, self.clock.now())
            if refused is not None:
                count(refused)
                return refused, []
            if row.overlap_policy == "buffer_one":
                dropped = await work.skip_buffered(
                    self.pool, row.task_id, row.run_id, now=self.clock.now()
                )
                if dropped:
                    OUTCOMES["skipped"].inc(dropped)
            emit = Emitter(row, self.settings.max_event_depth)
            result, duration_ms = await self.attempts.run(row, emit)
            outcome = classify(
                result, row, self.clock.now(), self.retry_policy, duration_ms=duration_ms
            )
            count(outcome)
            if outcome.status == "succeeded":
                return outcome, emit.events
            if outcome.status != "skipped":  # skipped: a condition poll that did not fire
                log.warning(
                    "run attempt failed", extra={"error": outcome.error, "outcome": outcome.status}
                )
            # Events a failed attempt emitted are dropped with it: the retry emits them again.
            return outcome, []
        finally:
            logs.reset(ctx_token)

    async def record(self, outcome: work.Outcome, events: list[outbox.OutboxEvent]) -> bool:
        """Write one outcome fenced on its lease; False when the lease had moved on."""
        effect = self.conditions.take(outcome.run_id)  # a retry re-evaluates: no state yet
        done = await self.recorder.record(
            outcome, events, effect if outcome.status != "retry" else None
        )
        if done:
            self.tally[outcome.status] += 1
        else:
            metrics.LEASE_LOST.inc()
            log.warning(
                "lease lost before completion; result discarded",
                extra={"run_id": str(outcome.run_id), "attempt": outcome.attempt},
            )
            return False
        return True

    # -- drivers: one pass, a drain (Lambda); the process loop is worker.loop ------------

    async def run_once(self, limit: int | None = None) -> int:
        """Lease one batch, run it to the end; returns how many rows were leased."""
        rows = await self.lease(limit or self.settings.lease_batch)
        tasks = self.start(rows)
        if tasks:
            await asyncio.gather(*tasks)
        return len(rows)

    async def drain(self, budget_s: float) -> int:
        """Lease and run until nothing more can be done within ``budget_s``; returns rows run
        (``worker.drain``)."""
        return await draining.drain(self, budget_s)

    # -- leases ----------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Extend our leases; cancel runs whose lease another worker now owns."""
        now = self.clock.now()
        held = [
            (run_id, token)
            for run_id, (token, _) in self.in_flight.items()
            if run_id not in self.recording
        ]
        kept = await work.extend_leases(
            self.pool, held, now=now, lease_s=self.settings.lease_seconds
        )
        for run_id, _ in held:
            if run_id not in kept and run_id in self.in_flight and run_id not in self.recording:
                metrics.LEASE_LOST.inc()
                log.warning("lease lost; cancelling run", extra={"run_id": str(run_id)})
                self.in_flight[run_id][1].cancel()
        await heartbeats.beat(
            self.pool,
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            now=now,
            in_flight=len(self.in_flight),
        )

    async def rescue(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await work.rescue_expired(conn, now=self.clock.now())
        if rows:
            metrics.count_rescued(r.action for r in rows)
            log.warning("rescued expired leases", extra={"count": len(rows)})
        return len(rows)

    async def shutdown(self, grace_s: float) -> None:
        """Stop: wait up to ``grace_s`` for runs in flight, then release what is left."""
        pending = {t for _, t in self.in_flight.values()}
        if pending and grace_s > 0:
            await asyncio.wait(pending, timeout=grace_s)
        leftovers = [(run_id, token) for run_id, (token, _) in self.in_flight.items()]
        for _, task in list(self.in_flight.values()):
            task.cancel()
        if leftovers:
            released = await work.release(self.pool, leftovers, now=self.clock.now())
            log.info("released in-flight runs at shutdown", extra={"count": released})
        self.in_flight.clear()


def _report_crash(task: asyncio.Task[None]) -> None:
    """A run group that could not record its outcome (database gone): its lease expires and
    the slot is rescued by any worker; say so instead of a "never retrieved" warning."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("could not record a run; its lease will expire and be rescued", exc_info=exc)
