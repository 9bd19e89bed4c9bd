"""One attempt of a leased run: its pipeline, its secrets, its time bound, its timing.

``Attempts.run`` reads the pipeline (``PipelineCache``) and the secrets it names, runs it
within the row's run bound, and returns a ``PipelineResult``: every failure on the way is a
failed attempt (retried by the task's policy), never an exception. What the result comes to
is ``outcomes.classify``'s business, writing it the recorder's.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from ordinaut import conditions, metrics
from ordinaut.clock import Clock
from ordinaut.config import Settings
from ordinaut.errors import Unavailable
from ordinaut.pipeline import (
    CompiledPipeline,
    PipelineLimits,
    PipelineResult,
    RunContext,
    execute,
)
from ordinaut.pipeline.tools import ToolRegistry
from ordinaut.secrets import SecretBox
from ordinaut.store import secrets as secrets_store
from ordinaut.store.rows import LeasedRun
from ordinaut.worker.pipelines import Pipeline, PipelineCache

log = logging.getLogger("ordinaut.worker")

Emit = Callable[[str, dict[str, Any]], None]


class Attempts:
    """Runs leased attempts for one worker (its pool, settings, tools and caches)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        clock: Clock,
        registry: ToolRegistry,
        limits: PipelineLimits,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.registry = registry
        self.limits = limits
        self.pipelines = PipelineCache(
            pool, registry, limits, max_entries=max(1024, 2 * settings.lease_batch)
        )
        self.conditions = conditions.ConditionRunner(pool, registry, limits, self.secrets)
        self._box: SecretBox | None = None
        self._step_metrics: dict[tuple[str, str], Any] = {}

    async def run(self, row: LeasedRun, emit: Emit) -> tuple[PipelineResult, int]:
        """Run the row's attempt; returns its result and how long it took (ms)."""
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
        return result, int(elapsed * 1000)

    async def _attempt(self, row: LeasedRun, emit: Emit) -> PipelineResult:
        """Read the pipeline and the secrets it names, then run it; every failure on the way
        is a failed attempt (retried by the task's policy), never an exception."""
        try:
            pipeline = await self.pipelines.get(row)
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
            secret_values = await self.secrets(row.owner_id, pipeline[1])
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

    def run_bound_s(self, row: LeasedRun) -> float:
        """The longest this row's attempt may run: its task's bound, else the deployment's."""
        bound = row.run_bound_s
        return float(bound) if bound is not None else self.settings.max_run_duration_s

    async def _pipeline(
        self,
        row: LeasedRun,
        pipeline: Pipeline,
        secret_values: dict[str, str],
        emit: Emit,
    ) -> PipelineResult:
        """Run the task's pipeline for one leased attempt."""
        payload, compiled = pipeline
        ctx = RunContext(
            run_id=str(row.run_id),
            task_id=str(row.task_id),
            task_title=row.title,
            attempt=row.attempt,
            scheduled_for=row.scheduled_for,
            now=self.clock.now(),
            event=(
                {"id": row.event_key, "topic": row.event_topic, "payload": row.event_payload}
                if row.event_key is not None
                else None
            ),
            idempotency_key=row.idempotency_key,
            secrets=secret_values,
            emit=emit,
            scopes=frozenset(row.owner_scopes),
        )
        if row.trigger == "condition":
            return await self.conditions.run(
                {**row.as_mapping(), "payload": payload}, compiled, ctx
            )
        return await execute(compiled, ctx, registry=self.registry, limits=self.limits)

    async def secrets(
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
