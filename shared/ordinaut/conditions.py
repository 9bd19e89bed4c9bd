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
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut.errors import InvalidPipeline, Unavailable
from ordinaut.pipeline import (
    CompiledPipeline,
    ExpressionError,
    PipelineLimits,
    PipelineResult,
    RunContext,
    ToolRegistry,
    compile_expression,
    compile_payload,
    execute,
)
from ordinaut.pipeline.expressions import Expression, truthy
from ordinaut.pipeline.templates import parse_template
from ordinaut.store import conditions as store

log = logging.getLogger("ordinaut.conditions")

TRIGGER_FIELDS = {"event": ("filter",), "condition": ("check", "condition", "cooldown_seconds")}
EXTRA_FIELDS = ("filter", "check", "condition", "cooldown_seconds")
CONDITION_STEP = "_condition"  # the check's last step: its `if` is the condition
FILTER_ROOTS = ("event", "params", "now")
MAX_COOLDOWN_S = 366 * 24 * 3600

Effect = Callable[[asyncpg.Connection], Awaitable[None]]
SecretsFn = Callable[[UUID, CompiledPipeline | dict[str, Any]], Awaitable[dict[str, str]]]


# --- payload parts (pure) ----------------------------------------------------------------------


def main_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload the pipeline engine runs: everything but the trigger fields."""
    return {k: v for k, v in payload.items() if k not in EXTRA_FIELDS}


def check_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The check as a pipeline ending in one step whose ``if`` is the condition, so the
    engine validates the condition's references and evaluates it under its own budgets."""
    gate: dict[str, Any] = {
        "id": CONDITION_STEP,
        "uses": "echo",
        "if": payload.get("condition"),
        "with": {},
    }
    return {
        "params": payload.get("params") or {},
        "pipeline": [*(payload.get("check") or []), gate],
    }


def pipeline_parts(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every pipeline a task runs (main, and a condition task's check): for tool scopes."""
    parts = [main_payload(payload)]
    if payload.get("check") is not None:
        parts.append(check_payload(payload))
    return parts


def _problem(field: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"field": field, "message": message, "step": None, **extra}


def validate_extras(
    kind: str,
    payload: Mapping[str, Any],
    *,
    registry: ToolRegistry,
    limits: PipelineLimits,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The normalized trigger fields for ``kind`` and the problems found (422 details)."""
    given = {k: payload[k] for k in EXTRA_FIELDS if payload.get(k) is not None}
    allowed = TRIGGER_FIELDS.get(kind, ())
    problems = [
        _problem(
            f"payload.{k}",
            f"only {'condition' if k != 'filter' else 'event'} tasks have {k}",
        )
        for k in given
        if k not in allowed
    ]
    out: dict[str, Any] = {}
    if kind == "event" and "filter" in given:
        try:
            compile_filter(given["filter"], max_length=limits.max_expression_length)
            out["filter"] = given["filter"].strip()
        except ExpressionError as exc:
            problems.append(_problem("payload.filter", exc.message))
    if kind == "condition":
        check, condition = given.get("check"), given.get("condition")
        if not isinstance(check, list) or not check:
            problems.append(_problem("payload.check", "a condition task needs check: its steps"))
        if not isinstance(condition, str) or not condition.strip():
            problems.append(
                _problem(
                    "payload.condition",
                    "a condition task needs condition: an expression such as "
                    "${steps.price.output.value < `100`}",
                )
            )
        if not problems:
            compiled, found = _compile_check(payload, registry, limits)
            problems.extend(found)
            if compiled is not None:
                out["check"] = compiled.normalized["pipeline"][:-1]
                out["condition"] = condition.strip()  # type: ignore[union-attr]
        cooldown = given.get("cooldown_seconds")
        if cooldown is not None:
            if isinstance(cooldown, bool) or not isinstance(cooldown, int | float):
                problems.append(_problem("payload.cooldown_seconds", "must be a number"))
            elif not 0 <= cooldown <= MAX_COOLDOWN_S:
                problems.append(
                    _problem("payload.cooldown_seconds", f"must be from 0 to {MAX_COOLDOWN_S}")
                )
            else:
                out["cooldown_seconds"] = cooldown
    return out, problems


def _compile_check(
    payload: Mapping[str, Any], registry: ToolRegistry, limits: PipelineLimits
) -> tuple[CompiledPipeline | None, list[dict[str, Any]]]:
    gate = len(payload.get("check") or [])
    try:
        return compile_payload(check_payload(payload), registry=registry, limits=limits), []
    except InvalidPipeline as exc:
        found = []
        for p in exc.details or [{"field": "payload.check", "message": exc.message}]:
            field = str(p.get("field", ""))
            if field.startswith(f"payload.pipeline[{gate}]"):
                p = {**p, "field": "payload.condition", "step": None}
            else:
                p = {**p, "field": field.replace("payload.pipeline", "payload.check", 1)}
            found.append(p)
        return None, found


# --- event filters (pure) ----------------------------------------------------------------------


def compile_filter(text: Any, *, max_length: int) -> Expression:
    """A filter: one expression (bare or as ``${...}``) reading only event, params and now."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("must be an expression such as ${event.payload.amount > `100`}")
    parsed = parse_template(text.strip(), max_expression_length=max_length)
    if isinstance(parsed, str):
        expression = compile_expression(parsed, max_length=max_length)
    elif parsed.whole is not None:
        expression = parsed.whole
    else:
        raise ExpressionError("must be one expression, not text around ${...}")
    for ref in expression.refs:
        if ref.path[0] not in FILTER_ROOTS:
            raise ExpressionError(
                f"unknown name {ref.path[0]!r}; a filter reads {', '.join(FILTER_ROOTS)}"
            )
    return expression


@functools.lru_cache(maxsize=4096)
def _cached_filter(text: str, max_length: int) -> Expression:
    return compile_filter(text, max_length=max_length)


def filter_passes(
    text: str, *, event: dict[str, Any], params: Any, now: str, limits: PipelineLimits
) -> bool:
    """Whether a stored filter lets ``event`` through; an evaluation error means no."""
    try:
        expression = _cached_filter(text, limits.max_expression_length)
        value = expression.evaluate(
            {"event": event, "params": params or {}, "now": now},
            budget=limits.budget(),
            max_string=limits.max_render_bytes,
            max_depth=limits.max_json_depth,
        )
    except ExpressionError as exc:
        log.info("event filter did not evaluate", extra={"error": exc.message})
        return False
    return truthy(value)


# --- edges (pure) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    fire: bool
    reason: str


def decide(
    value: bool,
    previous: bool | None,
    *,
    fired_at: datetime | None,
    now: datetime,
    cooldown_s: float,
) -> Decision:
    """Fire only on false -> true (never evaluated counts as false), outside the cooldown."""
    if not value:
        return Decision(False, "condition is false")
    if previous:
        return Decision(False, "condition was already true")
    if fired_at is not None and cooldown_s > 0:
        left = cooldown_s - (now - fired_at).total_seconds()
        if left > 0:
            return Decision(False, f"cooldown: {left:g} s left")
    return Decision(True, "condition turned true")


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
        if state is None or state["status"] != "active" or state["schedule_kind"] != "condition":
            why = "task is " + (
                "deleted"
                if state is None
                else state["status"]
                if state["status"] != "active"
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
        previous = state["value"]
        cooldown = float(row["payload"].get("cooldown_seconds") or 0)
        decision = decide(
            value, previous, fired_at=state["fired_at"], now=ctx.now, cooldown_s=cooldown
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
