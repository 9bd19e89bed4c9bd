"""Running a pipeline: steps in order, conditions, per-step retries and timeouts, records.

Nothing a tool raises escapes ``execute`` except ``asyncio.CancelledError`` (the worker
cancelling the run): every failure becomes a failed step ``{code, message}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from ordinaut import tracing
from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline.context import PipelineResult, RunContext
from ordinaut.pipeline.expressions import Budget, ExpressionError, truthy
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.records import (
    MASK,
    TooBig,
    clip_message,
    mask_secrets,
    record_value,
    to_jsonable,
)
from ordinaut.pipeline.schema import validate as validate_schema
from ordinaut.pipeline.templates import Renderer
from ordinaut.pipeline.tools.registry import ToolError, ToolRegistry
from ordinaut.pipeline.validate import CompiledPipeline, CompiledStep, compile_payload


async def execute(
    payload: dict[str, Any] | CompiledPipeline,
    ctx: RunContext,
    *,
    registry: ToolRegistry,
    limits: PipelineLimits,
) -> PipelineResult:
    """Run ``payload`` for one attempt; a failing step fails the run unless it may continue.

    A worker may pass a ``CompiledPipeline`` it compiled (and cached) for the same registry
    and limits, so a task that runs often is not re-validated on every attempt.
    """
    if isinstance(payload, CompiledPipeline):
        compiled = payload
    else:
        try:
            compiled = compile_payload(payload, registry=registry, limits=limits)
        except InvalidPipeline as exc:
            error = {
                "step": None,
                "code": exc.code,
                "message": exc.message,
                "details": exc.details,
            }
            return PipelineResult("failed", None, [], error)
    run = _Run(compiled, ctx, limits)
    records: list[dict[str, Any]] = []
    output: Any = None
    for step in compiled.steps:
        with tracing.span(
            "step", attributes={"ordinaut.step": step.id, "ordinaut.tool": step.uses}
        ) as span:
            record, value = await run.step(step)
            span.set_attribute("ordinaut.step.status", record["status"])
        records.append(record)
        entry = {"output": value, "status": record["status"], "error": record["error"]}
        run.scope["steps"][step.id] = entry
        if step.save_as:
            run.scope["steps"][step.save_as] = entry
        if record["status"] == "skipped":
            continue
        output = record["output"]
        if record["status"] == "failed" and not step.continue_on_error:
            error = {"step": step.id, **record["error"]}
            return PipelineResult("failed", output, records, error)
    return PipelineResult("succeeded", output, records, None)


class _Run:
    """State of one execution: the expression scopes and the secret values to mask."""

    def __init__(self, compiled: CompiledPipeline, ctx: RunContext, limits: PipelineLimits) -> None:
        self.ctx = ctx
        self.limits = limits
        # a copy per run: a tool that changes its arguments must not change the cached pipeline
        self.scope = ctx.scope({**compiled.params, **(ctx.params_override or {})})
        # the same ``steps`` dict is shared by every scope, so later steps see earlier results
        if ctx.secrets:
            self.with_secrets = {**self.scope, "secrets": dict(ctx.secrets)}
            self.masked = {**self.scope, "secrets": {name: MASK for name in ctx.secrets}}
            self.secret_values = [v for k, v in ctx.secrets.items() if k in compiled.secrets and v]
        else:  # no secrets: nothing to mask, one scope serves both renders
            self.with_secrets = self.masked = {**self.scope, "secrets": {}}
            self.secret_values = []

    def _error(self, code: str, message: str) -> dict[str, str]:
        text = clip_message(message, self.secret_values, self.limits.max_error_message_length)
        return {"code": code, "message": text}

    async def step(self, step: CompiledStep) -> tuple[dict[str, Any], Any]:
        """Run one step; returns its record and its full (unmasked) output for later steps."""
        started = time.monotonic()
        record: dict[str, Any] = {
            "id": step.id,
            "uses": step.uses,
            "status": "succeeded",
            "input": None,
            "output": None,
            "error": None,
            "duration_ms": 0,
            "attempts": 0,
        }
        value: Any = None
        try:
            if step.condition is not None and not self._condition(step):
                record["status"] = "skipped"
                return record, None
            args = self._render(step, self.with_secrets)
            record["input"] = self._recorded_input(step, args)
            if not step.static_args:
                problems = validate_schema(args, step.tool.input_schema, "with")
                if problems:
                    message = "; ".join(f"{p}: {m}" for p, m in problems)
                    raise ToolError("invalid_arguments", message)
            value = await self._attempts(step, args, record)
            try:
                value = to_jsonable(value)
            except TooBig as exc:
                raise ToolError("output_too_large", f"output has {exc}") from None
            # the record gets its own copy: later steps may be handed ``value`` itself
            record["output"] = record_value(
                value, self.secret_values, self.limits.max_step_output_bytes
            )
        except ExpressionError as exc:
            record.update(status="failed", error=self._error(exc.code, exc.message))
            value = None
        except ToolError as exc:
            record.update(status="failed", error=self._error(exc.code, exc.message))
            value = None
        except Exception as exc:  # our own bug must still not crash the worker
            record.update(status="failed", error=self._error("internal_error", repr(exc)))
            value = None
        finally:
            record["duration_ms"] = round((time.monotonic() - started) * 1000)
        return record, value

    def _condition(self, step: CompiledStep) -> bool:
        assert step.condition is not None
        try:
            result = step.condition.evaluate(
                self.scope,
                budget=Budget(self.limits.max_expression_work),
                max_string=self.limits.max_render_bytes,
            )
        except ExpressionError as exc:
            raise ExpressionError(f"if: {exc.message}", code=exc.code) from None
        return truthy(result)

    def _render(self, step: CompiledStep, scope: dict[str, Any]) -> Any:
        renderer = Renderer(
            scope, max_bytes=self.limits.max_render_bytes, work=self.limits.max_expression_work
        )
        return renderer.render(step.args, "with")

    def _recorded_input(self, step: CompiledStep, args: Any) -> Any:
        shown = args
        if step.secrets:
            # Rendering again with every secret as "***" also hides upper(secret) and the like;
            # each string that differs is derived from a secret and is masked from now on.
            try:
                shown = self._render(step, self.masked)
            except ExpressionError:
                shown = mask_secrets(to_jsonable(args), self.secret_values)
            else:
                derived = _derived(args, shown, self.limits.max_string_length)
                self.secret_values.extend(
                    d for d in derived if mask_secrets(d, self.secret_values) == d
                )
        return record_value(shown, self.secret_values, self.limits.max_step_output_bytes)

    async def _attempts(self, step: CompiledStep, args: Any, record: dict[str, Any]) -> Any:
        for attempt in range(1, step.attempts + 1):
            record["attempts"] = attempt
            try:
                if not step.tool.suspends:
                    return _run_inline(step.tool.run(args, self.ctx))
                # asyncio.timeout cancels a hung tool like wait_for, without a task per step
                async with asyncio.timeout(step.timeout_s):
                    return await step.tool.run(args, self.ctx)
            except TimeoutError:
                failure = ToolError(
                    "timeout", f"step timed out after {step.timeout_s:g}s", retryable=True
                )
            except ToolError as exc:
                failure = exc
            except Exception as exc:
                failure = ToolError("tool_error", f"{type(exc).__name__}: {exc}", retryable=True)
            if not failure.retryable or attempt == step.attempts:
                raise failure
            if step.backoff_s:
                await asyncio.sleep(step.backoff_s)
        raise AssertionError("a step always makes at least one attempt")


def _run_inline(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a tool that does not suspend to its end now; a timer would be pure overhead."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise ToolError("internal_error", "a tool declared as not suspending awaited something")


def _derived(real: Any, masked: Any, max_length: int) -> list[str]:
    """Strings of ``real`` that differ from ``masked`` at the same place (secret-derived).

    Strings where masking the raw secret already gives the masked render are left out, so
    ``Bearer <secret>`` is recorded as ``Bearer ***`` rather than ``***``.
    """
    if isinstance(real, str) and isinstance(masked, str):
        return [real] if real != masked and 0 < len(real) <= max_length else []
    if isinstance(real, dict) and isinstance(masked, dict):
        return [
            s for k in real.keys() & masked.keys() for s in _derived(real[k], masked[k], max_length)
        ]
    if isinstance(real, list) and isinstance(masked, list):
        return [s for r, m in zip(real, masked, strict=False) for s in _derived(r, m, max_length)]
    return []
