"""Dry run: render every step with sample params and report what each tool would receive.

No tool runs. Values that depend on earlier steps' outputs cannot be known and are reported
as ``deferred`` (their template text is shown); secrets render as ``***``. A foreach step
whose list is known is rendered once per item (``items``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ordinaut.pipeline.context import RunContext
from ordinaut.pipeline.expressions import Expression, ExpressionError, truthy
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.records import MASK, record_value
from ordinaut.pipeline.schema import type_of
from ordinaut.pipeline.schema import validate as validate_schema
from ordinaut.pipeline.templates import Renderer, Template, render_tree
from ordinaut.pipeline.tools.registry import ToolRegistry
from ordinaut.pipeline.validate import CompiledStep, compile_payload


def _needs_steps(*expressions: Expression, unknown: tuple[str, ...] = ("steps",)) -> bool:
    return any(ref.path[0] in unknown for e in expressions for ref in e.refs)


def _leaf(
    renderer: Renderer,
    deferred: list[str],
    errors: list[dict[str, str]],
    unknown: tuple[str, ...] = ("steps",),
) -> Callable[[Template, str], Any]:
    def leaf(template: Template, path: str) -> Any:
        if _needs_steps(*template.expressions, unknown=unknown):
            deferred.append(path)
            return template.source
        try:
            return renderer(template, path)
        except ExpressionError as exc:
            errors.append({"field": path, "message": exc.message.removeprefix(f"{path}: ")})
            return template.source

    return leaf


def dry_run(
    payload: object,
    *,
    sample_params: dict[str, Any] | None,
    registry: ToolRegistry,
    limits: PipelineLimits,
    now: datetime,
    event: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One report per step: ``{id, uses, would_run, input, deferred, errors}``.

    ``would_run`` is None when the condition depends on earlier steps. A foreach step adds
    ``foreach``: the items (None when they depend on earlier steps) and ``items``: one
    ``{index, input, deferred, errors}`` per item; its ``input`` shows what depends on the
    item as template text. The items of a dry run are rendered within what ``max_steps``
    renders may spend; an item past that shows its templates, ``deferred``, with a ``note``.
    Raises ``InvalidPipeline`` exactly as ``validate_payload`` does.
    """
    compiled = compile_payload(payload, registry=registry, limits=limits)
    allowance = _ItemAllowance(limits)
    ctx = RunContext("dry-run", "dry-run", "", 1, now, now, event=event)
    scope = ctx.scope({**compiled.params, **(sample_params or {})})
    scope["secrets"] = {name: MASK for name in compiled.secrets}
    reports = []
    for step in compiled.steps:
        errors: list[dict[str, str]] = []
        deferred: list[str] = []
        would_run: bool | None = True
        if step.condition is not None:
            would_run = None
            if not _needs_steps(step.condition):
                try:
                    would_run = truthy(
                        step.condition.evaluate(
                            scope,
                            budget=limits.budget(),
                            max_string=limits.max_render_bytes,
                            max_depth=limits.max_json_depth,
                        )
                    )
                except ExpressionError as exc:
                    errors.append({"field": "if", "message": exc.message})
        unknown = ("steps", "item", "index") if step.foreach is not None else ("steps",)
        renderer = Renderer(scope, limits=limits)
        rendered = render_tree(step.args, _leaf(renderer, deferred, errors, unknown), "with")
        if not deferred and not errors:
            for path, message in validate_schema(rendered, step.tool.input_schema, "with"):
                errors.append({"field": path, "message": message})
        report = {
            "id": step.id,
            "uses": step.uses,
            "would_run": would_run,
            "input": record_value(rendered, [], limits.max_step_output_bytes),
            "deferred": deferred,
            "errors": errors,
        }
        if step.foreach is not None:
            items = _items(step, scope, limits, errors)
            report["foreach"] = record_value(items, [], limits.max_step_output_bytes)
            report["items"] = record_value(
                [
                    _item_report(step, scope, limits, i, item, allowance)
                    for i, item in enumerate(items or [])
                ],
                [],
                limits.max_step_output_bytes,
            )
        reports.append(report)
    return reports


def _items(
    step: CompiledStep, scope: dict[str, Any], limits: PipelineLimits, errors: list[dict[str, str]]
) -> list[Any] | None:
    """The list a foreach step would go over; None when it depends on earlier steps or
    cannot be used (an entry in ``errors`` says why)."""
    assert step.foreach is not None
    if _needs_steps(step.foreach):
        return None
    try:
        items = step.foreach.evaluate(
            scope,
            budget=limits.budget(),
            max_string=limits.max_render_bytes,
            max_depth=limits.max_json_depth,
        )
    except ExpressionError as exc:
        errors.append({"field": "foreach", "message": exc.message})
        return None
    if not isinstance(items, list):
        errors.append({"field": "foreach", "message": f"is {type_of(items)}, not a list"})
        return None
    if len(items) > limits.max_foreach_items:
        errors.append(
            {
                "field": "foreach",
                "message": f"{len(items)} items, more than max_foreach_items "
                f"({limits.max_foreach_items})",
            }
        )
        return None
    return items


class _ItemAllowance:
    """What the item renders of one dry run may spend together: the work and time of
    ``max_steps`` renders, what a dry run without foreach may take. A dry run evaluates in the
    API's small evaluation pool (``offload``, shared with event filters); without this, items
    would multiply its cost by ``max_foreach_items``. Items past it are shown unrendered."""

    NOTE = (
        "not rendered: this dry run's item renders together may spend what max_steps renders "
        "may (max_expression_work, max_expression_ms); a run renders every item"
    )

    def __init__(self, limits: PipelineLimits) -> None:
        self.units = limits.max_steps * limits.max_expression_work
        self.deadline = time.monotonic() + limits.max_steps * limits.max_expression_ms / 1000

    def spent(self, renderer: Renderer) -> None:
        self.units -= renderer.budget.limit - renderer.budget.left

    @property
    def exhausted(self) -> bool:
        return self.units <= 0 or time.monotonic() > self.deadline


def _item_report(
    step: CompiledStep,
    scope: dict[str, Any],
    limits: PipelineLimits,
    index: int,
    item: Any,
    allowance: _ItemAllowance,
) -> dict[str, Any]:
    """What one item's tool call would receive (its templates, once ``allowance`` is spent)."""
    errors: list[dict[str, str]] = []
    deferred: list[str] = []
    if allowance.exhausted:

        def unrendered(template: Template, path: str) -> Any:
            deferred.append(path)
            return template.source

        held = render_tree(step.args, unrendered, "with")
        return {
            "index": index,
            "input": record_value(held, [], limits.max_step_output_bytes),
            "deferred": deferred,
            "errors": errors,
            "note": _ItemAllowance.NOTE,
        }
    renderer = Renderer({**scope, "item": item, "index": index}, limits=limits)
    try:
        rendered = render_tree(step.args, _leaf(renderer, deferred, errors), "with")
    finally:
        allowance.spent(renderer)
    if not deferred and not errors:
        for path, message in validate_schema(rendered, step.tool.input_schema, "with"):
            errors.append({"field": path, "message": message})
    return {
        "index": index,
        "input": record_value(rendered, [], limits.max_step_output_bytes),
        "deferred": deferred,
        "errors": errors,
    }
