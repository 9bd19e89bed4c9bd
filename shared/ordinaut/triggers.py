"""Trigger fields of a task payload, pure: event filters, a condition task's check, edges.

A task payload may hold, beside ``params`` and ``pipeline``, the fields of its trigger (see
``ordinaut.conditions`` for how a worker runs a condition task). Everything here is pure, so
task validation (``taskdefs``) and event matching (``ingest``) use it without a database.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline import (
    CompiledPipeline,
    ExpressionError,
    PipelineLimits,
    ToolRegistry,
    compile_expression,
    compile_payload,
)
from ordinaut.pipeline.expressions import Expression, truthy
from ordinaut.pipeline.templates import parse_template

log = logging.getLogger("ordinaut.conditions")

TRIGGER_FIELDS = {"event": ("filter",), "condition": ("check", "condition", "cooldown_seconds")}
EXTRA_FIELDS = ("filter", "check", "condition", "cooldown_seconds")
CONDITION_STEP = "_condition"  # the check's last step: its `if` is the condition
FILTER_ROOTS = ("event", "params", "now")
MAX_COOLDOWN_S = 366 * 24 * 3600


# --- payload parts (pure) ----------------------------------------------------------------------


def main_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload the pipeline engine runs: everything but the trigger fields and
    ``notify`` (webhooks for the run's end, ``ordinaut.notifications``)."""
    return {k: v for k, v in payload.items() if k not in EXTRA_FIELDS and k != "notify"}


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
