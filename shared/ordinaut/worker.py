"""Workers: lease due work with SKIP LOCKED, run pipelines, record outcomes, fenced on the lease.

``run_once`` (one lease + run + record), ``drain`` (until idle or out of time, for Lambda) and
``run_worker`` (the long-running process) share one ``Worker``; only the driver differs.
No database transaction is open while a pipeline runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ordinaut import conditions, consumer, events, logs, metrics, outcomes, tracing, triggers
from ordinaut.clock import Clock, DatabaseClock
from ordinaut.config import Settings
from ordinaut.errors import InvalidPipeline, Unavailable, ValidationFailed
from ordinaut.ingest import ingest_on
from ordinaut.pipeline import (
    CompiledPipeline,
    PipelineLimits,
    PipelineResult,
    RunContext,
    compile_payload,
    execute,
)
from ordinaut.pipeline.tools import ToolError, ToolRegistry
from ordinaut.retries import is_retryable, next_attempt_at
from ordinaut.secrets import SecretBox
from ordinaut.store import db, heartbeats, outbox, work
from ordinaut.store import events as event_store
from ordinaut.store import secrets as secrets_store
from ordinaut.store.quota import RunQuota
from ordinaut.toolbox import build_registry

log = logging.getLogger("ordinaut.worker")

CUT_GRACE_S = 1.0  # at a drain's deadline: how long outcomes being written may still take

# Label children resolved once: labels() costs a lock and a dict lookup on every call.
OUTCOMES = {
    name: metrics.RUNS.labels(name)
    for name in ("succeeded", "failed", "retried", "dead_letter", "skipped", "canceled")
}


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
        self.rng = rng or random.Random()
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
        self._step_metrics: dict[tuple[str, str], Any] = {}
        self.last_lease_at = self.started_at
        # what this worker did, for a Lambda drain's metrics: outcomes recorded by status,
        # and the start lag of the rows it leased (count, total, worst)
        self.tally: Counter[str] = Counter()
        self.start_lag_s = [0, 0.0, 0.0]
        self._box: SecretBox | None = None
        # (task_id, payload version) -> its payload and compiled pipeline: an edit changes the key
        self._pipelines: OrderedDict[tuple[uuid.UUID, int], _Pipeline] = OrderedDict()
        self._pipelines_max = max(1024, 2 * settings.lease_batch)
        self.conditions = conditions.ConditionRunner(
            pool, self.registry, self.limits, self._secrets
        )

    def _remember(self, key: tuple[uuid.UUID, int], payload: dict[str, Any]) -> _Pipeline:
        main = triggers.main_payload(payload)  # without filter, check, condition
        try:
            compiled: CompiledPipeline | dict[str, Any] = compile_payload(
                main, registry=self.registry, limits=self.limits
            )
        except InvalidPipeline:
            compiled = main  # execute() turns it into a failed attempt naming the problem
        entry = self._pipelines[key] = (payload, compiled)
        while len(self._pipelines) > self._pipelines_max:
            self._pipelines.popitem(last=False)
        return entry

    async def load_pipelines(self, rows: list[asyncpg.Record]) -> None:
        """Read and compile the payloads of task versions this worker has not seen yet."""
        missing = {
            r["task_id"] for r in rows if (r["task_id"], r["task_version"]) not in self._pipelines
        }
        if not missing:
            return
        latest: dict[uuid.UUID, _Pipeline] = {}
        for t in await work.task_payloads(self.pool, list(missing)):
            latest[t["id"]] = self._remember((t["id"], t["payload_version"]), t["payload"])
        for r in rows:
            key = (r["task_id"], r["task_version"])
            if key not in self._pipelines and r["task_id"] in latest:
                # edited between the lease and this read: the run gets the version read now
                self._pipelines[key] = latest[r["task_id"]]

    async def pipeline(self, row: asyncpg.Record) -> _Pipeline | None:
        """The row's task payload and compiled pipeline; None when the task is gone."""
        key = (row["task_id"], row["task_version"])
        hit = self._pipelines.get(key)
        if hit is None:
            await self.load_pipelines([row])
            hit = self._pipelines.get(key)
        else:
            self._pipelines.move_to_end(key)
        return hit

    # -- leasing -------------------------------------------------------------------------

    async def lease(self, limit: int, *, within_s: float | None = None) -> list[asyncpg.Record]:
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
                lag_s = max(0.0, (now - r["run_at"]).total_seconds())
                metrics.START_LAG.observe(lag_s)
                lag[0] += 1
                lag[1] += lag_s
                lag[2] = max(lag[2], lag_s)
            try:
                await self.load_pipelines(rows)  # one read for every new task version
            except Exception as exc:
                # the rows are ours now and must start: each run retries its own read, and
                # one that cannot is a failed attempt (Worker._attempt)
                log.warning("could not read task pipelines", extra={"error": repr(exc)})
        return rows

    def start(self, rows: list[asyncpg.Record]) -> list[asyncio.Task[None]]:
        """Start leased rows; rows of one task that must not overlap run one after another."""
        groups: dict[uuid.UUID, list[asyncpg.Record]] = defaultdict(list)
        started: list[asyncio.Task[None]] = []
        for row in rows:
            if row["overlap_policy"] == "allow":
                started.append(self._spawn([row]))
            else:
                groups[row["task_id"]].append(row)
        for group in groups.values():
            started.append(self._spawn(group))
        return started

    def _spawn(self, rows: list[asyncpg.Record]) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run_group(rows))
        task.add_done_callback(_report_crash)
        for row in rows:
            self.in_flight[row["run_id"]] = (row["lease_token"], task)
        metrics.WORKER_IN_FLIGHT.set(len(self.in_flight))
        return task

    async def _run_group(self, rows: list[asyncpg.Record]) -> None:
        try:
            if len(rows) > 1 and rows[0]["overlap_policy"] == "buffer_one":
                # Slots that were all due together: the oldest runs, the rest were buffered
                # beyond the one that buffer_one keeps.
                rows, extra = rows[:1], rows[1:]
                for row in extra:
                    await self.record(self._skipped(row, "buffer_one keeps one waiting slot"), [])
                    self.in_flight.pop(row["run_id"], None)
            for row in rows:
                try:
                    with tracing.span(
                        "run",
                        parent=row["trace_context"],
                        attributes={
                            "ordinaut.run_id": str(row["run_id"]),
                            "ordinaut.task_id": str(row["task_id"]),
                            "ordinaut.attempt": row["attempt"],
                            "ordinaut.trigger": row["trigger"],
                        },
                    ) as span:
                        outcome, events = await self._execute(row)
                        span.set_attribute("ordinaut.outcome", outcome.status)
                        # From here the row's fate is being written (fenced): a heartbeat must
                        # neither extend nor "lose" a lease the completion is deleting.
                        self.recording.add(row["run_id"])
                        await self.record(outcome, events)
                finally:
                    self.recording.discard(row["run_id"])
                    self.in_flight.pop(row["run_id"], None)
                    metrics.WORKER_IN_FLIGHT.set(len(self.in_flight))
                    self.slot_freed.set()
        except asyncio.CancelledError:
            for row in rows:
                self.in_flight.pop(row["run_id"], None)
            raise

    # -- running -------------------------------------------------------------------------

    async def _execute(self, row: asyncpg.Record) -> tuple[work.Outcome, list[outbox.OutboxEvent]]:
        run_id, attempt, token = row["run_id"], row["attempt"], row["lease_token"]
        ctx_token = logs.bind(task_id=str(row["task_id"]), run_id=str(run_id), attempt=attempt)
        try:
            if not row["owner_active"]:
                return self._owner_inactive(row), []
            # overlap "skip" drops a *scheduled* slot that finds its predecessor still running;
            # an event or a run_now is a request somebody made, so it runs instead of vanishing.
            if (
                row["overlap_policy"] == "skip"
                and row["sibling_running"]
                and row["trigger"] == "schedule"
            ):
                return self._skipped(row, "the previous run of this task was still running"), []
            if row["overlap_policy"] == "buffer_one":
                skipped = await work.skip_buffered(
                    self.pool, row["task_id"], run_id, now=self.clock.now()
                )
                if skipped:
                    OUTCOMES["skipped"].inc(skipped)
            events: list[outbox.OutboxEvent] = []
            # an event this run publishes is one hop deeper than the event that started it
            depth = (row["event_depth"] or 0) + 1
            max_depth = self.settings.max_event_depth

            def emit(topic: str, payload: dict[str, Any]) -> None:
                if max_depth > 0 and depth > max_depth:
                    raise ToolError(
                        "event_depth_exceeded",
                        f"this run was started by an event {depth - 1} event.publish hops from "
                        f"an event from outside; publishing would exceed max_event_depth "
                        f"({max_depth})",
                    )
                events.append(
                    outbox.OutboxEvent(
                        event_type=f"custom.{topic}",
                        tenant_id=row["owner_id"],
                        subject_id=run_id,
                        payload={
                            "topic": topic,
                            "payload": payload,
                            "run_id": str(run_id),
                            "depth": depth,
                        },
                    )
                )

            t0 = time.perf_counter()
            result = await self._attempt(row, emit)
            elapsed = time.perf_counter() - t0
            metrics.RUN_DURATION.observe(elapsed)
            for step in result.steps:
                key = (step.get("uses", "?"), step.get("status", "?"))
                child = self._step_metrics.get(key)
                if child is None:
                    child = self._step_metrics[key] = metrics.STEP_DURATION.labels(*key)
                child.observe((step.get("duration_ms") or 0) / 1000.0)
            now = self.clock.now()
            duration_ms = int(elapsed * 1000)
            if result.status == "skipped":  # a condition poll that did not fire
                OUTCOMES["skipped"].inc()
                return (
                    work.Outcome(
                        run_id,
                        token,
                        attempt,
                        "skipped",
                        now,
                        duration_ms,
                        output=result.output,
                        steps=result.steps,
                    ),
                    [],
                )
            if result.status == "succeeded":
                OUTCOMES["succeeded"].inc()
                return (
                    work.Outcome(
                        run_id,
                        token,
                        attempt,
                        "succeeded",
                        now,
                        duration_ms,
                        output=result.output,
                        steps=result.steps,
                    ),
                    events,
                )
            # One rule for a run that ends without success: it is dead-lettered (listed with
            # GET /runs?status=dead_letter, the status page, the CLI and MCP), whether its
            # retries ran out, it had none (max_retries 0), or no retry could fix its error.
            retryable = is_retryable(result.error)
            if attempt < row["max_attempts"] and retryable:
                OUTCOMES["retried"].inc()
                metrics.RETRIES.inc()
                retry_at = next_attempt_at(
                    row["backoff_strategy"],
                    attempt,
                    now,
                    base_s=self.settings.backoff_base_s,
                    max_s=self.settings.backoff_max_s,
                    rng=self.rng,
                )
                status = "retry"
            else:
                retry_at = None
                status = "dead_letter"
                OUTCOMES[status].inc()
                metrics.DEAD_LETTERS.inc()
                if not retryable and attempt < row["max_attempts"] and result.error is not None:
                    result.error["retried"] = False
                    result.error["why_not_retried"] = (
                        f"{result.error.get('code')} cannot succeed on a retry; fix the task"
                    )
            log.warning("run attempt failed", extra={"error": result.error, "outcome": status})
            # Events a failed attempt emitted are dropped with it: the retry emits them again.
            return (
                work.Outcome(
                    run_id,
                    token,
                    attempt,
                    status,
                    now,
                    duration_ms,
                    error=result.error,
                    steps=result.steps,
                    retry_at=retry_at,
                ),
                [],
            )
        finally:
            logs.reset(ctx_token)

    async def _attempt(
        self, row: asyncpg.Record, emit: Callable[[str, dict[str, Any]], None]
    ) -> PipelineResult:
        """Read the pipeline and the secrets it names, then run it; every failure on the way
        is a failed attempt (retried by the task's policy), never an exception."""
        try:
            pipeline = await self.pipeline(row)
        except Exception as exc:
            log.warning("could not read the task's pipeline", extra={"error": repr(exc)})
            return PipelineResult.failure(
                "unavailable", "could not read the task's pipeline; retried"
            )
        if pipeline is None:
            # deleted after the lease: the delete removed the slot too, so this outcome is
            # fenced out when recorded; it only has to be an outcome
            return PipelineResult.failure("task_gone", "the task was deleted")
        try:
            secret_values = await self._secrets(row["owner_id"], pipeline[1])
        except Unavailable as exc:
            return PipelineResult.failure(exc.code, exc.message)
        bound = self.run_bound_s(row)
        try:
            async with asyncio.timeout(bound):
                result = await self._pipeline(row, pipeline, secret_values, emit)
        except TimeoutError:
            return PipelineResult.failure(
                "run_timeout",
                f"the run took longer than its bound of {bound:g} s "
                "(max_duration_s, else its steps' timeouts and retries)",
            )
        compiled = pipeline[1]
        if not result.succeeded and isinstance(compiled, CompiledPipeline):
            # A pipeline may read an absent secret with a default (``|| ''``); a step that
            # failed reading one that is not stored fails again until the secret is stored.
            message = str((result.error or {}).get("message", ""))
            missing = sorted(
                name
                for name in set(compiled.secrets) - set(secret_values)
                if f"secrets.{name}" in message
            )
            if missing:
                result.error = {
                    "step": (result.error or {}).get("step"),
                    "code": "secret_missing",
                    "message": f"secret(s) not stored: {', '.join(missing)} "
                    "(store them with PUT /secrets/NAME)",
                    "details": {"secrets": missing, "step_error": result.error},
                }
        return result

    def run_bound_s(self, row: asyncpg.Record) -> float:
        """The longest this row's attempt may run: its task's bound, else the deployment's."""
        bound = row["run_bound_s"]
        return float(bound) if bound is not None else self.settings.max_run_duration_s

    def _owner_inactive(self, row: asyncpg.Record) -> work.Outcome:
        OUTCOMES["canceled"].inc()
        return work.Outcome(
            row["run_id"],
            row["lease_token"],
            row["attempt"],
            "canceled",
            self.clock.now(),
            error={
                "code": "owner_inactive",
                "message": "the agent owning this task was deactivated; the run was not executed",
            },
        )

    def _skipped(self, row: asyncpg.Record, why: str) -> work.Outcome:
        OUTCOMES["skipped"].inc()
        return work.Outcome(
            row["run_id"],
            row["lease_token"],
            row["attempt"],
            "skipped",
            self.clock.now(),
            error={"code": "overlap_skipped", "message": why},
        )

    async def _pipeline(
        self,
        row: asyncpg.Record,
        pipeline: _Pipeline,
        secret_values: dict[str, str],
        emit: Callable[[str, dict[str, Any]], None],
    ) -> PipelineResult:
        """Run the task's pipeline for one leased attempt."""
        payload, compiled = pipeline
        run_id, attempt = row["run_id"], row["attempt"]
        ctx = RunContext(
            run_id=str(run_id),
            task_id=str(row["task_id"]),
            task_title=row["title"],
            attempt=attempt,
            scheduled_for=row["scheduled_for"],
            now=self.clock.now(),
            event=(
                {
                    "id": row["event_key"],
                    "topic": row["event_topic"],
                    "payload": row["event_payload"],
                }
                if row["event_key"] is not None
                else None
            ),
            idempotency_key=row["idempotency_key"],
            secrets=secret_values,
            emit=emit,
            scopes=frozenset(row["owner_scopes"]),
        )
        if row["trigger"] == "condition":
            return await self.conditions.run(dict(row.items(), payload=payload), compiled, ctx)
        return await execute(compiled, ctx, registry=self.registry, limits=self.limits)

    async def _secrets(
        self, owner_id: uuid.UUID, compiled: CompiledPipeline | dict[str, Any]
    ) -> dict[str, str]:
        """The owner's secrets this pipeline names, decrypted for this attempt only.

        A missing one is simply absent: the step that reads it fails naming the path.
        """
        if not isinstance(compiled, CompiledPipeline) or not compiled.secrets:
            return {}
        if self._box is None:
            self._box = SecretBox(self.settings.secrets_key)  # Unavailable when unconfigured
        sealed = await secrets_store.fetch(self.pool, owner_id, compiled.secrets)
        return {name: self._box.open(value) for name, value in sealed.items()}

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

    # -- single passes -------------------------------------------------------------------

    async def run_once(self, limit: int | None = None) -> int:
        """Lease one batch, run it to the end; returns how many rows were leased."""
        rows = await self.lease(limit or self.settings.lease_batch)
        tasks = self.start(rows)
        if tasks:
            await asyncio.gather(*tasks)
        return len(rows)

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
            metrics.count_rescued(rows)
            log.warning("rescued expired leases", extra={"count": len(rows)})
        return len(rows)

    async def drain(self, budget_s: float) -> int:
        """Lease and run until nothing more can be done within ``budget_s``; returns rows run.

        Only rows whose run bound fits the time left are leased (the rest stay queued, their
        attempt untouched, for a worker with more time). While nothing is due, the worker
        waits for the next due instant it could still finish, instead of leaving work due
        within its budget to the next wake-up. Runs still going at the deadline are cut off and
        their attempt counts (``work.cut_at_deadline``): due again at once for a worker with the
        time, dead-lettered after the last attempt, so no run repeats for ever.
        """
        deadline = time.monotonic() + budget_s
        total = 0
        while (left := deadline - time.monotonic()) > 0:
            want = self.lease_size()
            if not want:
                await self._wait_for_slot(min(0.05, left))
                continue
            rows = await self.lease(want, within_s=left)
            total += len(rows)
            self.start(rows)
            if rows and len(rows) == want:
                continue
            pause = await self._until_due(deadline)
            if pause is None and not self.in_flight:
                break
            # a run finishing frees a slot (and may queue follow-up work): lease again then
            pause = self.settings.poll_interval_s if pause is None else pause
            await self._wait_for_slot(min(pause, self.settings.poll_interval_s, left))
        await self._cut_at_deadline()
        await self.shutdown(grace_s=0.0)
        return total

    async def _until_due(self, deadline: float) -> float | None:
        """Seconds until the next queued row this drain could still finish (0: lease now);
        None when there is none before ``deadline`` (a ``time.monotonic()`` instant)."""
        now = self.clock.now()
        left = deadline - time.monotonic()
        next_at = await work.next_due_within(
            self.pool,
            after=self.last_lease_at,
            deadline=now + timedelta(seconds=left),
            default_bound_s=self.settings.max_run_duration_s,
        )
        if next_at is None:
            return None
        return max(0.0, (next_at - now).total_seconds() + 0.0005)

    async def _cut_at_deadline(self) -> None:
        """The drain's time is up: outcomes being written get a moment, the rest are cancelled
        and their attempts counted."""
        writing = {t for run_id, (_, t) in self.in_flight.items() if run_id in self.recording}
        if writing:
            await asyncio.wait(writing, timeout=CUT_GRACE_S)
        cut = [
            (run_id, token)
            for run_id, (token, _) in self.in_flight.items()
            if run_id not in self.recording
        ]
        tasks = {t for _, t in self.in_flight.values()}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CUT_GRACE_S)
        if not cut:
            return
        rows = await work.cut_at_deadline(self.pool, cut, now=self.clock.now())
        for row in rows:
            if row["action"] == "dead_letter":
                OUTCOMES["dead_letter"].inc()
                metrics.DEAD_LETTERS.inc()
                self.tally["dead_letter"] += 1
            else:
                OUTCOMES["retried"].inc()
                self.tally["retry"] += 1
        log.warning(
            "drain deadline cut runs off; their attempts count",
            extra={"count": len(rows), "run_ids": [str(r["id"]) for r in rows]},
        )
        for run_id, _ in cut:
            self.in_flight.pop(run_id, None)

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

    async def _wait_for_slot(self, within_s: float) -> None:
        self.slot_freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.slot_freed.wait(), within_s)

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


# a task version's payload, and its compiled main pipeline (the payload itself when invalid)
_Pipeline = tuple[dict[str, Any], CompiledPipeline | dict[str, Any]]

_Pending = tuple[
    work.Outcome, list[outbox.OutboxEvent], conditions.Effect | None, asyncio.Future[bool]
]


def _report_crash(task: asyncio.Task[None]) -> None:
    """A run group that could not record its outcome (database gone): its lease expires and
    the slot is rescued by any worker; say so instead of a "never retrieved" warning."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("could not record a run; its lease will expire and be rescued", exc_info=exc)


# Errors after which the same write may succeed if tried again: the connection or the server
# went away (a restart, a failover) or the transaction lost a conflict.
_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
)


class Recorder:
    """Batches completions: outcomes that finish together share one transaction.

    Commits are the cost (bench/README.md): under load, every flush writes everything that
    finished while the previous flush was committing. Each caller still awaits its own result.

    A batch mixes agents, so one outcome must never fail the others: a write that fails on
    the data (the encoder or PostgreSQL refusing one outcome) is redone outcome by outcome,
    and one that fails on the connection is retried for up to ``retry_for_s`` (while the
    leases are still ours, the fenced write lands; after, it is a no-op). A finished run left
    unrecorded would expire its lease and be rescued, that is run again.
    """

    MAX_BATCH = 500

    def __init__(
        self, pool: asyncpg.Pool, *, retry_for_s: float = 15.0, max_runs_per_minute: int = 0
    ) -> None:
        self.pool = pool
        self.retry_for_s = retry_for_s
        self.max_runs_per_minute = max_runs_per_minute
        self.queue: list[_Pending] = []
        self.flusher: asyncio.Task[None] | None = None

    async def record(
        self,
        outcome: work.Outcome,
        events: list[outbox.OutboxEvent],
        effect: conditions.Effect | None = None,
    ) -> bool:
        """``effect`` runs in the same transaction when a terminal outcome is written."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queue.append((outcome, events, effect, fut))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[: self.MAX_BATCH], self.queue[self.MAX_BATCH :]
            deadline = time.monotonic() + self.retry_for_s
            try:
                done = await self._persist(batch, deadline)
            except _TRANSIENT as exc:
                for _, _, _, fut in batch:  # the database stays unreachable
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            except Exception as exc:
                # One outcome the encoder or PostgreSQL refuses must not fail the others that
                # happened to finish with it (they may belong to other agents): the batch
                # rolled back as a whole, so write each outcome on its own.
                if len(batch) > 1:
                    log.warning(
                        "batched completion failed; writing each outcome alone",
                        extra={"error": repr(exc), "count": len(batch)},
                    )
                for item in batch:
                    await self._write_alone(item, deadline)
                continue
            except BaseException as exc:
                for _, _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError(f"recorder stopped: {exc!r}"))
                raise
            for outcome, _, _, fut in batch:
                if not fut.done():
                    fut.set_result(outcome.run_id in done)

    async def _persist(self, batch: list[_Pending], deadline: float) -> set[uuid.UUID]:
        """``_write``, retried with backoff on connection errors until ``deadline``."""
        delay = 0.1
        while True:
            try:
                return await self._write(batch)
            except _TRANSIENT as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "recording outcomes failed; retrying",
                    extra={"error": repr(exc), "count": len(batch), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _write_alone(self, item: _Pending, deadline: float) -> None:
        """Write one outcome; if it cannot be stored, store that the run failed instead.

        An outcome that cannot be written must not be left to its lease expiring: a rescue
        would run finished work (and its side effects) again. So the run is dead-lettered
        with ``storage_error`` (no output, no step records, no events; a failed attempt with
        retries left keeps its retry). Only if even that cannot be written (the database is
        gone) does the caller get the exception.
        """
        outcome, _, _, fut = item
        try:
            done = await self._persist([item], deadline)
        except _TRANSIENT as exc:  # the database, not the outcome: nothing to replace
            if not fut.done():
                fut.set_exception(exc)
            return
        except Exception as exc:
            log.error(
                "a run's outcome could not be stored; recording it as failed",
                extra={"run_id": str(outcome.run_id), "error": repr(exc)},
            )
            try:
                done = await self._persist([(_unstorable(outcome, exc), [], None, fut)], deadline)
            except Exception as again:
                if not fut.done():
                    fut.set_exception(again)
                return
        if not fut.done():
            fut.set_result(outcome.run_id in done)

    async def _write(self, batch: list[_Pending]) -> set[uuid.UUID]:
        retries = [o for o, _, _, _ in batch if o.status == "retry"]
        terminal = [o for o, _, _, _ in batch if o.status != "retry"]
        if not retries and not any(evs or fx for _, evs, fx, _ in batch):
            # One statement is atomic on its own: skip BEGIN/COMMIT round trips (hot path).
            async with self.pool.acquire() as conn:
                return {r["id"] for r in await work.finish(conn, terminal)}
        wake = False
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                done = {r["id"] for r in await work.finish(conn, terminal)}
                for o, _, fx, _ in batch:
                    if fx is not None and o.run_id in done:
                        await fx(conn)
                done |= {r["id"] for r in await work.requeue(conn, retries)}
                events = [e for o, evs, _, _ in batch if o.run_id in done for e in evs]
                if events:
                    await outbox.append(conn, events, now=batch[-1][0].finished_at)
                quota = RunQuota(self.max_runs_per_minute, batch[-1][0].finished_at)
                refused: dict[uuid.UUID, str | None] = {}  # publisher checks, per owner
                for o, evs, _, _ in batch:
                    if o.run_id in done and evs:
                        wake |= await _publish_emitted(conn, o, evs, quota, refused)
                await quota.charge(conn)  # last: see store/quota.py
            if wake:
                await work.notify_work(conn)
        return done


def _unstorable(outcome: work.Outcome, exc: Exception) -> work.Outcome:
    """What is recorded for an outcome that could not be stored: a failure naming why.

    A failed attempt that was going to be retried still is; any other outcome ends the run as
    a dead letter without a retry: the attempt ran to its end, and running it again would
    repeat its side effects only to produce the same unstorable outcome.
    """
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    error: dict[str, Any] = {
        "step": None,
        "code": "storage_error",
        "message": f"the run's outcome could not be stored ({reason})",
    }
    if outcome.status != "retry":
        error.update(retried=False, why_not_retried="the attempt finished; it is not run again")
    return dataclasses.replace(
        outcome,
        status="retry" if outcome.status == "retry" else "dead_letter",
        output=None,
        steps=[],
        error=error,
    )


async def _publish_emitted(
    conn: asyncpg.Connection,
    outcome: work.Outcome,
    emitted: list[outbox.OutboxEvent],
    quota: RunQuota,
    refused: dict[uuid.UUID, str | None],
) -> bool:
    """Events a successful run published (``event.publish``) enter the events-in path in the
    run's completing transaction: subscribed tasks get their slots, or nothing happens at all.

    The event id is the slot's run id plus the position, so a slot that somehow succeeds twice
    publishes each event once. An owner deactivated or stripped of ``events:publish`` while
    the run went on publishes nothing (said in the log); ``refused`` keeps that check's answer
    per owner for the whole batch. Returns True when runs were queued.
    """
    wake = False
    for i, event in enumerate(emitted):
        body = event.payload
        if event.tenant_id is None or not event.event_type.startswith("custom."):
            continue
        if event.tenant_id not in refused:
            refused[event.tenant_id] = await event_store.publisher(conn, event.tenant_id)
        if refused[event.tenant_id] is not None:
            log.warning(
                "event.publish not routed: %s",
                refused[event.tenant_id],
                extra={"run_id": str(outcome.run_id), "topic": body["topic"]},
            )
            continue
        try:
            summary = await ingest_on(
                conn,
                tenant_id=event.tenant_id,
                topic=body["topic"],
                payload=body["payload"],
                event_id=f"run-{outcome.run_id}.{i}",
                now=outcome.finished_at,
                source="pipeline",
                depth=int(body.get("depth", 1)),
                quota=quota,
            )
        except ValidationFailed as exc:  # checked before any SQL: the transaction is intact
            log.warning(
                "event.publish topic not accepted by the event system; published out only",
                extra={"run_id": str(outcome.run_id), "error": exc.message},
            )
            continue
        wake |= bool(summary.get("_wake"))
    return wake


async def _periodic(
    stop: asyncio.Event, interval: float, fn: Callable[[], Awaitable[Any]], what: str
) -> None:
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            await fn()
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.warning(f"{what} failed", extra={"error": repr(exc)})


async def run_worker(
    settings: Settings, stop: asyncio.Event, *, worker_id: str | None = None
) -> None:
    """The long-running worker: sleeps until the next due instant or a wake-up, then leases."""
    pool = await db.create_pool(
        settings, min_size=2, max_size=max(4, min(settings.worker_concurrency, 10))
    )
    clock = DatabaseClock()
    await db.sync_clock(pool, clock)
    worker = Worker(pool, settings, clock, worker_id=worker_id)
    logs.bind(worker_id=worker.worker_id)
    wake = asyncio.Event()
    listener = await db.connect(settings)

    def on_notify(*_: object) -> None:
        wake.set()

    await listener.add_listener(work.WAKE_CHANNEL, on_notify)

    async def beat_and_sync() -> None:
        await db.sync_clock(pool, clock)
        await worker.heartbeat()

    redis = events.connect_redis(settings) if settings.redis_url else None

    async def relay() -> None:
        # The outbox relay lives in the worker process; while Redis is down the outbox grows
        # and /health says degraded, and this catches up in order when it returns.
        if redis is None:
            return
        await events.relay_pending(pool, redis, clock.now, settings)

    # notifications and lifecycle events of ended runs (ordinaut.outcomes), never in a run's way
    deliverer = outcomes.Deliverer(pool, settings)

    async def route_outcomes() -> None:
        await outcomes.relay(pool, deliverer, clock.now, settings)

    background = [
        asyncio.create_task(
            _periodic(stop, settings.notify_interval_s, route_outcomes, "run outcomes")
        ),
        asyncio.create_task(_periodic(stop, settings.heartbeat_s, beat_and_sync, "heartbeat")),
        asyncio.create_task(_periodic(stop, settings.rescue_interval_s, worker.rescue, "rescue")),
        asyncio.create_task(_periodic(stop, settings.relay_interval_s, relay, "event relay")),
    ]
    if redis is not None:
        # the ingest stream's consumer group feeds event tasks (ordinaut.consumer)
        background.append(
            asyncio.create_task(
                consumer.run_consumer(pool, redis, settings, clock, stop, name=worker.worker_id)
            )
        )
    await worker.heartbeat()
    log.info("worker started", extra={"concurrency": settings.worker_concurrency})
    try:
        while not stop.is_set():
            want = worker.lease_size()
            if want:
                try:
                    rows = await worker.lease(want)
                except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                    log.warning("lease failed", extra={"error": repr(exc)})
                    rows = []
                    await asyncio.sleep(settings.poll_interval_s)
                worker.start(list(rows))
                if rows and len(rows) == want:
                    continue
                timeout = await _until_next_due(worker, clock, settings)
            else:
                timeout = settings.poll_interval_s
            wake.clear()
            worker.slot_freed.clear()
            waiters = [
                asyncio.create_task(wake.wait()),
                asyncio.create_task(stop.wait()),
                asyncio.create_task(worker.slot_freed.wait()),
            ]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
    finally:
        log.info("worker stopping", extra={"in_flight": len(worker.in_flight)})
        for t in background:
            t.cancel()
        await worker.shutdown(grace_s=settings.lease_seconds)
        with contextlib.suppress(Exception):
            await heartbeats.forget_worker(pool, worker.worker_id)
        await listener.close()
        if redis is not None:
            await redis.aclose()
        await pool.close()
        log.info("worker stopped")


async def _until_next_due(worker: Worker, clock: Clock, settings: Settings) -> float:
    """Seconds to sleep: until the earliest queued instant, capped by the poll interval."""
    try:
        next_at: datetime | None = await work.next_due_at(worker.pool)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return settings.poll_interval_s
    if next_at is None:
        return settings.poll_interval_s
    if next_at <= worker.last_lease_at:
        # It was due when we leased and we did not get it: blocked by overlap or a
        # concurrency key (or another worker is about to take it). Poll instead of spinning.
        return min(settings.poll_interval_s, 0.25)
    # Otherwise sleep until its instant; 0 when it became due since our lease.
    delta = (next_at - clock.now()).total_seconds()
    return min(settings.poll_interval_s, max(0.0, delta + 0.0005))
