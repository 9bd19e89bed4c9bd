"""Running a pipeline: steps in order, conditions, per-step retries and timeouts, records,
and ``foreach`` steps (one tool call per item, up to ``max_concurrency`` at once).

Nothing a tool raises escapes ``execute`` except ``asyncio.CancelledError`` (the worker
cancelling the run): every failure becomes a failed step ``{code, message}``. A cancelled
foreach step cancels and awaits its items before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ordinaut import tracing
from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline.context import PipelineResult, RunContext
from ordinaut.pipeline.expressions import Expression, ExpressionError, truthy
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.records import (
    MASK,
    TooBig,
    clip_message,
    mask_secrets,
    record_value,
    to_jsonable,
    unstorable,
    with_encodings,
)
from ordinaut.pipeline.schema import type_of
from ordinaut.pipeline.schema import validate as validate_schema
from ordinaut.pipeline.templates import Renderer, Template, render_tree
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
            record, value, shown = await run.step(step)
            span.set_attribute("ordinaut.step.status", record["status"])
        records.append(record)
        entry = {"output": value, "status": record["status"], "error": record["error"]}
        run.scope["steps"][step.id] = entry
        shadow = {**entry, "output": shown}
        run.shadow["steps"][step.id] = shadow
        if step.save_as:
            run.scope["steps"][step.save_as] = entry
            run.shadow["steps"][step.save_as] = shadow
        if record["status"] == "skipped":
            continue
        output = record["output"]
        if record["status"] == "failed" and not step.continue_on_error:
            error = {"step": step.id, **record["error"]}
            return PipelineResult("failed", output, records, error)
    return PipelineResult("succeeded", output, records, None)


# How long a run may compute without letting the event loop serve anything else (heartbeats,
# other runs): each evaluation is bounded by max_expression_ms, and the engine yields between
# them once this much time has passed.
_YIELD_AFTER_S = 0.02
# How many values of a step's output are looked at to name the part a record cannot hold
# (``to_jsonable`` converts no more).
_MAX_NODES = 200_000


async def _run_items(
    step: CompiledStep, count: int, run_item: Callable[[int], Awaitable[None]], failed: list[int]
) -> None:
    """Run items ``0..count-1`` in order over ``max_concurrency`` workers; once an item has
    failed (``failed`` is not empty) no further one starts, unless ``continue_on_error``."""
    pending = iter(range(count))  # shared by the workers: each index is taken once

    async def worker() -> None:
        for index in pending:
            await run_item(index)
            if failed and not step.continue_on_error:
                raise _StopItems

    try:
        if min(step.max_concurrency, count) <= 1:
            await worker()
        else:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(step.max_concurrency, count)):
                    group.create_task(worker())
    except* _StopItems:
        pass


class _Run:
    """State of one execution: the expression scopes and the secret values to mask.

    Secrets are tracked by taint, not by string: next to the real scope runs a *shadow* scope
    in which every secret is ``***`` and every step output is what was recorded. A step whose
    arguments render differently in the two (it read a secret, or an earlier step's output
    derived from one) is tainted: its record shows the shadow arguments, a pure tool's
    (``Tool.pure``) recorded output is that tool run over the shadow arguments, any other
    tool's output is masked with every secret and secret-derived string in plain, URL- and
    base64-encoded form, and tools see the shadow arguments as ``ctx.shown_args`` for what
    they log or publish. So no recorded value, log line or event is computed from a secret.
    """

    def __init__(self, compiled: CompiledPipeline, ctx: RunContext, limits: PipelineLimits) -> None:
        self.ctx = ctx
        self.limits = limits
        # a copy per run: a tool that changes its arguments must not change the cached pipeline
        self.scope = ctx.scope({**compiled.params, **(ctx.params_override or {})})
        # the same ``steps`` dict is shared by every real scope, so later steps see earlier
        # results; the shadow scope has its own, holding what each step recorded
        if ctx.secrets:
            self.with_secrets = {**self.scope, "secrets": dict(ctx.secrets)}
            self.secret_values = [v for k, v in ctx.secrets.items() if k in compiled.secrets and v]
        else:  # no secrets: nothing to mask, one scope serves both renders
            self.with_secrets = {**self.scope, "secrets": {}}
            self.secret_values = []
        self.shadow = {
            **self.scope,
            "steps": {},
            "secrets": {name: MASK for name in ctx.secrets},
        }
        self.masks = with_encodings(self.secret_values)
        self.tainted = False  # some value so far was derived from a secret
        self._breathed = time.monotonic()

    def _error(self, code: str, message: str) -> dict[str, str]:
        text = clip_message(message, self.masks, self.limits.max_error_message_length)
        return {"code": code, "message": text}

    def _recorded(self, value: Any, field: str) -> Any:
        """What a step record stores of ``value`` (``record_value``). A value PostgreSQL would
        not store as given (NUL, a lone surrogate: ``ordinaut.storable``) fails the step here,
        naming where it is, instead of the run's whole outcome at the write."""
        recorded = record_value(value, self.masks, self.limits.max_step_output_bytes)
        problem = unstorable(recorded, field)
        if problem is None:
            return recorded
        # the record may be a cut preview of ``value``: name the part of the value itself
        problem = unstorable(value, field, max_nodes=_MAX_NODES) or problem
        raise ToolError("unstorable_value", f"{problem}; it cannot be recorded")

    def _taint(self, real: Any, shown: Any) -> None:
        """Remember the strings of ``real`` that differ from ``shown`` as secret-derived."""
        derived = _derived(real, shown, self.limits.max_string_length)
        fresh = [d for d in derived if mask_secrets(d, self.masks) == d]
        if fresh:
            self.masks = with_encodings([*self.masks, *fresh])

    async def _breathe(self) -> None:
        if time.monotonic() - self._breathed > _YIELD_AFTER_S:
            await asyncio.sleep(0)
            self._breathed = time.monotonic()

    async def step(self, step: CompiledStep) -> tuple[dict[str, Any], Any, Any]:
        """Run one step; returns its record, its full (unmasked) output for later steps and
        its shadow output (what later steps' shadow renders see)."""
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
        shown_value: Any = None
        try:
            await self._breathe()
            if step.condition is not None and not self._condition(step):
                record["status"] = "skipped"
                return record, None, None
            self._check_scopes(step)
            if step.foreach is not None:
                value, shown_value = await self._foreach(step, record)
            else:
                value, shown_value = await self._invoke(
                    step, self.with_secrets, self.shadow, record, ctx=self._keyed(step.id)
                )
        except Exception as exc:  # our own bug must still not crash the worker
            record.update(status="failed", error=self._failure(exc))
            value = shown_value = None
        finally:
            record["duration_ms"] = round((time.monotonic() - started) * 1000)
        return record, value, shown_value

    def _keyed(self, suffix: str) -> RunContext:
        """The run's context with the idempotency key of one call: the slot's key, then
        ``:<suffix>`` (``<step id>`` or ``<step id>:<index>``).

        Every step is a request of its own: with the slot's key alone a receiver that honours
        Idempotency-Key would drop the second POST of a run as a repeat of the first. The
        suffix depends only on the pipeline, so every attempt of the slot sends the same key
        for the same call. No slot key (a dry run): no key.
        """
        key = self.ctx.idempotency_key
        return dataclasses.replace(self.ctx, idempotency_key=f"{key}:{suffix}" if key else "")

    def _failure(self, exc: Exception) -> dict[str, str]:
        """The error record of a failed step or item (``internal_error``: our own bug)."""
        if isinstance(exc, (ExpressionError, ToolError)):
            return self._error(exc.code, exc.message)
        return self._error("internal_error", repr(exc))

    async def _invoke(
        self,
        step: CompiledStep,
        scope: dict[str, Any],
        shadow: dict[str, Any],
        record: Any,
        *,
        ctx: RunContext | None = None,
    ) -> tuple[Any, Any]:
        """Render the step's arguments in ``scope`` (its shadow in ``shadow``), run the tool
        with ``ctx`` (default: the run's), and fill ``record``'s input, output and attempts;
        returns the output and its shadow."""
        await self._breathe()
        args, shown = self._arguments(step, scope, shadow)
        tainted = shown is not args
        record["input"] = self._recorded(shown, "with")
        if not step.static_args:
            problems = validate_schema(args, step.tool.input_schema, "with")
            if problems:
                message = "; ".join(f"{p}: {m}" for p, m in problems)
                raise ToolError("invalid_arguments", message)
        await self._breathe()
        ctx = ctx or self.ctx
        ctx = dataclasses.replace(ctx, shown_args=shown) if tainted else ctx
        try:
            value = await self._attempts(step, args, record, ctx)
        except ToolError as exc:
            if tainted and step.tool.pure:
                # its message may quote what it computed from the secret
                raise self._shadow_failure(step, shown, exc) from None
            raise
        try:
            value = to_jsonable(value)
        except TooBig as exc:
            raise ToolError("output_too_large", f"output has {exc}") from None
        shown_value = self._shown_output(step, shown, value) if tainted else value
        # the record gets its own copy: later steps may be handed ``value`` itself
        record["output"] = self._recorded(shown_value, "output")
        return value, shown_value

    def _items(self, step: CompiledStep) -> tuple[list[Any], list[Any]]:
        """The list a foreach step runs over, and its shadow (what records may show)."""
        assert step.foreach is not None
        items = self._evaluate(step.foreach, "foreach")
        if not isinstance(items, list):
            raise ToolError(
                "invalid_foreach", f"foreach: evaluated to {type_of(items)}, not a list"
            )
        bound = self.limits.max_foreach_items
        if len(items) > bound:
            raise ToolError(
                "limit_exceeded",
                f"foreach: {len(items)} items, more than max_foreach_items ({bound})",
            )
        if not self.tainted:
            return items, items
        # earlier outputs derive from a secret: the items may too, and are shown as the
        # shadow scope has them (or *** each when the shadow has no list of the same length)
        try:
            shown = step.foreach.evaluate(
                self.shadow,
                budget=self.limits.budget(),
                max_string=self.limits.max_render_bytes,
                max_depth=self.limits.max_json_depth,
            )
        except ExpressionError:
            shown = None
        if not (isinstance(shown, list) and len(shown) == len(items)):
            shown = [MASK] * len(items)
        if shown != items:
            self._taint(items, shown)
        return items, shown

    async def _foreach(self, step: CompiledStep, record: dict[str, Any]) -> tuple[Any, Any]:
        """Run the step once per item, ``max_concurrency`` at a time; outputs in item order.

        ``item`` and ``index`` join the scope of each item's arguments. A failed item fails
        the step at once (items still running are cancelled, none is started) unless the step
        has ``continue_on_error``: then every item runs, a failed one's output is
        ``{"error": {code, message}}`` and the step is recorded as failed after the others.
        """
        items, shown_items = self._items(step)
        limit = self.limits.max_step_output_bytes
        record["input"] = self._recorded(shown_items, "foreach")
        count = len(items)
        results: list[tuple[Any, Any] | None] = [None] * count
        item_records: list[dict[str, Any] | None] = [None] * count
        failed: list[int] = []  # indexes of failed items, in the order they failed

        async def run_item(index: int) -> None:
            entry: dict[str, Any] = {
                "index": index,
                "status": "succeeded",
                "input": None,
                "output": None,
                "error": None,
                "duration_ms": 0,
                "attempts": 0,
            }
            item_records[index] = entry
            started = time.monotonic()
            scope = {**self.with_secrets, "item": items[index], "index": index}
            shadow = {**self.shadow, "item": shown_items[index], "index": index}
            # each item is a request of its own: one key for all would have a receiver that
            # honours Idempotency-Key drop items 1..n as repeats of item 0
            item_ctx = self._keyed(f"{step.id}:{index}")
            try:
                results[index] = await self._invoke(step, scope, shadow, entry, ctx=item_ctx)
            except asyncio.CancelledError:
                entry.update(
                    status="canceled",
                    error={"code": "canceled", "message": "stopped: the step is failing"},
                )
                raise
            except Exception as exc:
                entry.update(status="failed", error=self._failure(exc))
                failure = {"error": entry["error"]}
                results[index] = (failure, failure)
                failed.append(index)
            finally:
                entry["duration_ms"] = round((time.monotonic() - started) * 1000)

        try:
            await _run_items(step, count, run_item, failed)
        finally:
            reached = [entry for entry in item_records if entry is not None]
            record["attempts"] = sum(entry["attempts"] for entry in reached)
            # each item's output is in the step's output list, at its index
            for entry in reached:
                entry.pop("output", None)
            record["items"] = record_value(reached, self.masks, limit)
        if failed and not step.continue_on_error:
            first = item_records[failed[0]]
            assert first is not None
            raise ToolError(
                first["error"]["code"], f"item {failed[0]}: {first['error']['message']}"
            )
        values = [result[0] if result else None for result in results]
        shown_values = [result[1] if result else None for result in results]
        record["output"] = self._recorded(shown_values, "output")
        if failed:
            first = item_records[min(failed)]
            assert first is not None
            more = f" ({len(failed)} of {count} items failed)" if len(failed) > 1 else ""
            record.update(
                status="failed",
                error=self._error(
                    first["error"]["code"], f"item {min(failed)}: {first['error']['message']}{more}"
                ),
            )
        return values, shown_values

    def _check_scopes(self, step: CompiledStep) -> None:
        """The task was checked against its owner's scopes when saved; an admin may since
        have removed one, and the step must not act with it."""
        held = self.ctx.scopes
        if held is None or not step.tool.scopes or "admin" in held:
            return
        missing = sorted(set(step.tool.scopes) - held)
        if missing:
            raise ToolError(
                "missing_scope",
                f"{step.uses} needs the {', '.join(missing)} scope, which the task's owner "
                "no longer holds",
            )

    def _condition(self, step: CompiledStep) -> bool:
        assert step.condition is not None
        return truthy(self._evaluate(step.condition, "if"))

    def _evaluate(self, expression: Expression, field: str) -> Any:
        """A step field's expression over the run's scope, within one expression budget; an
        error names the field."""
        try:
            return expression.evaluate(
                self.scope,
                budget=self.limits.budget(),
                max_string=self.limits.max_render_bytes,
                max_depth=self.limits.max_json_depth,
            )
        except ExpressionError as exc:
            raise ExpressionError(f"{field}: {exc.message}", code=exc.code) from None

    def _render(self, step: CompiledStep, scope: dict[str, Any]) -> Any:
        renderer = Renderer(scope, limits=self.limits)
        return renderer.render(step.args, "with")

    def _arguments(
        self, step: CompiledStep, scope: dict[str, Any], shadow: dict[str, Any]
    ) -> tuple[Any, Any]:
        """The step's real arguments (rendered in ``scope``, which holds the secrets) and its
        shadow ones (in ``shadow``); the same object when untainted."""
        if not (step.secrets or self.tainted):
            args = self._render(step, scope)
            return args, args
        try:
            args = self._render(step, scope)
        except ExpressionError as exc:
            # the message may quote a value computed from a secret: say what the shadow says
            try:
                self._render(step, shadow)
            except ExpressionError as shadow_exc:
                raise shadow_exc from None
            raise ExpressionError(
                "evaluation failed on a value derived from a secret (details withheld)",
                code=exc.code,
            ) from None
        shown = self._shadow_render(step, shadow)
        if shown == args:
            return args, args
        self.tainted = True
        self._taint(args, shown)
        return args, shown

    def _shadow_render(self, step: CompiledStep, shadow: dict[str, Any]) -> Any:
        """The arguments rendered in the shadow scope; a template that cannot be evaluated
        there (``abs(to_number("***"))``) shows as ``***``, never as its real value."""
        renderer = Renderer(shadow, limits=self.limits)

        def leaf(template: Template, path: str) -> Any:
            try:
                return renderer(template, path)
            except ExpressionError:
                return MASK

        return render_tree(step.args, leaf, "with")

    def _shown_output(self, step: CompiledStep, shown_args: Any, value: Any) -> Any:
        """What a tainted step's output is recorded as (and what later shadow renders see)."""
        if step.tool.pure:
            try:
                shown = to_jsonable(_run_inline(step.tool.run(shown_args, self.ctx)))
            except Exception:
                return MASK  # the tool cannot run without the secret: nothing of it is shown
            self._taint(value, shown)
            return shown
        return mask_secrets(value, self.masks)

    def _shadow_failure(self, step: CompiledStep, shown_args: Any, real: ToolError) -> ToolError:
        try:
            _run_inline(step.tool.run(shown_args, self.ctx))
        except ToolError as exc:
            return ToolError(real.code, exc.message, retryable=real.retryable)
        except Exception:
            pass
        return ToolError(
            real.code,
            "the step failed on a value derived from a secret (details withheld)",
            retryable=real.retryable,
        )

    async def _attempts(
        self, step: CompiledStep, args: Any, record: dict[str, Any], ctx: RunContext
    ) -> Any:
        for attempt in range(1, step.attempts + 1):
            record["attempts"] = attempt
            try:
                if not step.tool.suspends:
                    return _run_inline(step.tool.run(args, ctx))
                # asyncio.timeout cancels a hung tool like wait_for, without a task per step
                async with asyncio.timeout(step.timeout_s):
                    return await step.tool.run(args, ctx)
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


class _StopItems(Exception):
    """An item of a foreach step without continue_on_error failed: start no more."""


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
