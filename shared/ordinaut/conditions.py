"""Trigger conditions: event-task filters and condition tasks.

A task payload may hold, beside ``params`` and ``pipeline``:

* event tasks: ``filter``, one expression over ``event``, ``params`` and ``now``
  (``${event.payload.amount > `100`}``); an event whose filter is not true (or cannot be
  evaluated, e.g. a missing path without a default) does not trigger the task.
* condition tasks: ``check`` (steps, validated like the pipeline, run on every poll of the
  cron ``schedule_expr``), ``condition`` (one expression over the check's ``steps``) and
  optionally ``cooldown_seconds``. The main pipeline runs only when the condition turns from
  false to true; a task never evaluated counts as false, so a condition already true at the
  first poll fires once. A false -> true edge inside the cooldown (counted from the last
  fire) is recorded and does not fire; it is consumed, not deferred.

Each poll is one run (trigger ``condition``): ``skipped`` with ``{condition, previous,
fired: false, reason}`` as output when the main pipeline does not run, else the main
pipeline's outcome. Step results hold the check's steps, a ``condition`` record, then the main
pipeline's steps. The main pipeline reads the check as ``${event.payload.steps.<id>.output}``.
The value is stored (``condition_state``) in the transaction that records the run, so the
edge survives restarts; a main pipeline that fails and is retried re-evaluates the check.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.errors import InvalidPipeline, Unavailable
from ordinaut.pipeline import (
    CompiledPipeline,
    PipelineLimits,
    PipelineResult,
    RunContext,
    ToolRegistry,
    compile_payload,
    execute,
)
from ordinaut.store import conditions as store
from ordinaut.store.db import Connection
from ordinaut.triggers import CONDITION_STEP, Decision, check_payload, decide  # the pure side

log = logging.getLogger("ordinaut.conditions")


Effect = Callable[[Connection], Awaitable[None]]
SecretsFn = Callable[[UUID, CompiledPipeline | dict[str, Any]], Awaitable[dict[str, str]]]


# --- the worker's side --------------------------------------------------------------------------


class ConditionRunner:
    """Runs one poll of a condition task for a worker: check, decide, maybe the pipeline.

    The value is not written here: ``pending[run_id]`` holds the write, and the worker's
    recorder runs it in the transaction that records a terminal outcome of the run.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: ToolRegistry,
        limits: PipelineLimits,
        secrets: SecretsFn,
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.limits = limits
        self.secrets = secrets
        self.pending: dict[UUID, Effect] = {}
        self._compiled: OrderedDict[tuple[UUID, int], CompiledPipeline] = OrderedDict()

    def _check(self, row: Mapping[str, Any]) -> CompiledPipeline | dict[str, Any]:
        key = (row["task_id"], row["task_version"])
        hit = self._compiled.get(key)
        if hit is not None:
            return hit
        raw = check_payload(row["payload"])
        try:
            compiled = compile_payload(raw, registry=self.registry, limits=self.limits)
        except InvalidPipeline:
            return raw  # execute() turns it into a failed attempt naming the problem
        self._compiled[key] = compiled
        if len(self._compiled) > 1024:
            self._compiled.popitem(last=False)
        return compiled

    async def run(
        self,
        row: Mapping[str, Any],
        main: CompiledPipeline | dict[str, Any],
        ctx: RunContext,
    ) -> PipelineResult:
        """One evaluation; ``skipped`` when the main pipeline does not run."""
        run_id, task_id = row["run_id"], row["task_id"]
        state = await store.load(self.pool, task_id)
        if state is None or state.status != "active" or state.schedule_kind != "condition":
            why = "task is " + (
                "deleted"
                if state is None
                else state.status
                if state.status != "active"
                else "no longer a condition task"
            )
            return PipelineResult("skipped", {"fired": False, "reason": why}, [])
        check = self._check(row)
        try:
            check_secrets = await self.secrets(row["owner_id"], check)
        except Unavailable as exc:
            return PipelineResult.failure(exc.code, exc.message)
        check_ctx = dataclasses.replace(
            ctx, secrets={**ctx.secrets, **check_secrets}, emit=None, event=None
        )
        checked = await execute(check, check_ctx, registry=self.registry, limits=self.limits)
        records = [dict(r, phase="check") for r in checked.steps]
        if checked.status != "succeeded":
            error = dict(checked.error or {}, phase="check")
            if error.get("step") == CONDITION_STEP:
                error["step"] = "condition"
            return PipelineResult("failed", checked.output, _label(records), error)
        value = bool(records) and records[-1]["status"] == "succeeded"
        previous = state.value
        cooldown = float(row["payload"].get("cooldown_seconds") or 0)
        decision = decide(
            value, previous, fired_at=state.fired_at, now=ctx.now, cooldown_s=cooldown
        )
        records = _label(records, value=value, previous=previous, decision=decision)
        self.pending[run_id] = functools.partial(
            store.save,
            task_id=task_id,
            value=value,
            evaluated_for=row["scheduled_for"],
            now=ctx.now,
            fired=decision.fire,
            run_id=run_id,
        )
        if not decision.fire:
            output = {
                "condition": value,
                "previous": previous,
                "fired": False,
                "reason": decision.reason,
            }
            return PipelineResult("skipped", output, records)
        steps = {
            r["id"]: {"output": r["output"], "status": r["status"]}
            for r in records
            if r["id"] != "condition"
        }
        main_ctx = dataclasses.replace(
            ctx,
            event={
                "id": f"condition:{run_id}",
                "topic": "condition",
                "payload": {"condition": True, "steps": steps},
            },
        )
        result = await execute(main, main_ctx, registry=self.registry, limits=self.limits)
        return PipelineResult(result.status, result.output, records + result.steps, result.error)

    def take(self, run_id: UUID) -> Effect | None:
        """The state write waiting for this run's record, if any (always forgotten here)."""
        return self.pending.pop(run_id, None)


def _label(
    records: list[dict[str, Any]],
    *,
    value: bool | None = None,
    previous: bool | None = None,
    decision: Decision | None = None,
) -> list[dict[str, Any]]:
    """The gate step recorded as ``condition`` with what was decided."""
    out = []
    for r in records:
        if r["id"] == CONDITION_STEP:
            r = dict(r, id="condition", uses="condition", input=None)
            r["output"] = (
                None
                if decision is None
                else {
                    "value": value,
                    "previous": previous,
                    "fired": decision.fire,
                    "reason": decision.reason,
                }
            )
            if r["status"] == "skipped":
                r["status"] = "succeeded"  # the gate being closed is the answer, not a skip
        out.append(r)
    return out
