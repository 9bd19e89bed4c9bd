"""Validation before anything runs: a payload becomes a ``CompiledPipeline`` or an
``InvalidPipeline`` whose details name each problem's step and field."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

from ordinaut.pipeline.document import check_document
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.steps import MAX_DETAILS, CompiledStep, Problems, compile_step
from ordinaut.pipeline.templates import join_path as at
from ordinaut.pipeline.tools.registry import ToolRegistry

__all__ = ["CompiledPipeline", "CompiledStep", "compile_payload", "validate_payload"]


@dataclass(frozen=True, eq=False)
class CompiledPipeline:
    """A payload that passed validation: its params, its compiled steps, its normal form."""

    params: dict[str, Any]
    steps: tuple[CompiledStep, ...]
    normalized: dict[str, Any]

    @functools.cached_property
    def secrets(self) -> frozenset[str]:
        """Secret names the steps read (computed once: a worker asks on every run)."""
        return frozenset().union(*(s.secrets for s in self.steps))

    @functools.cached_property
    def scopes(self) -> frozenset[str]:
        """Scopes the tools of this pipeline need."""
        return frozenset(scope for s in self.steps for scope in s.tool.scopes)


def validate_payload(
    payload: object, *, registry: ToolRegistry, limits: PipelineLimits
) -> dict[str, Any]:
    """The normalized payload ``{"params", "pipeline"}``; raises ``InvalidPipeline``."""
    return compile_payload(payload, registry=registry, limits=limits).normalized


def compile_payload(
    payload: object, *, registry: ToolRegistry, limits: PipelineLimits
) -> CompiledPipeline:
    """Check every rule of a payload and parse it for execution; raises ``InvalidPipeline``."""
    problems = Problems()
    problems.items = [{**p, "step": None} for p in check_document(payload, limits)][:MAX_DETAILS]
    problems.raise_if_any()
    if not isinstance(payload, dict):
        problems.add("payload", "must be an object {params, pipeline}")
        problems.raise_if_any()
    assert isinstance(payload, dict)
    for key in payload:
        if key not in ("params", "pipeline"):
            problems.add(at("payload", key), "unknown field; a payload has params and pipeline")
    params = payload.get("params") or {}
    if not isinstance(params, dict):
        problems.add("payload.params", "must be an object")
    pipeline = payload.get("pipeline")
    if not isinstance(pipeline, list) or not pipeline:
        problems.add("payload.pipeline", "must be a non-empty list of steps")
    elif len(pipeline) > limits.max_steps:
        problems.add(
            "payload.pipeline",
            f"has {len(pipeline)} steps; max_steps is {limits.max_steps}",
            limit="max_steps",
        )
    problems.raise_if_any()
    assert isinstance(pipeline, list)
    names = _all_names(pipeline)
    known: set[str] = set()
    steps = []
    for index, raw in enumerate(pipeline):
        step = compile_step(index, raw, known, names, registry, limits, problems)
        if step is not None:
            steps.append(step)
    problems.raise_if_any()
    normalized = {"params": _copy(params), "pipeline": [_normal(raw) for raw in pipeline]}
    return CompiledPipeline(params, tuple(steps), normalized)


def _copy(value: Any) -> Any:
    """``copy.deepcopy`` of a checked document (``check_document``: JSON values only), a few
    times faster: plain objects and arrays are rebuilt, scalars shared (they are immutable)."""
    kind = type(value)
    if kind is dict:
        return {key: _copy(sub) for key, sub in value.items()}
    if kind is list:
        return [_copy(sub) for sub in value]
    if value is None or kind in (str, int, float, bool):
        return value
    return copy.deepcopy(value)  # a subclass of a JSON type keeps its own type, as before


def _all_names(pipeline: list[Any]) -> set[str]:
    return {
        name
        for raw in pipeline
        if isinstance(raw, dict)
        for name in (raw.get("id"), raw.get("save_as"))
        if isinstance(name, str)
    }


def _normal(raw: dict[str, Any]) -> dict[str, Any]:
    retry = raw.get("retry") or {}
    step = {
        "id": raw["id"],
        "uses": raw["uses"],
        "with": _copy(raw.get("with") or {}),
        "save_as": raw.get("save_as"),
        "if": raw.get("if"),
        "timeout_seconds": raw.get("timeout_seconds"),
        "retry": {
            "attempts": retry.get("attempts", 1),
            "backoff_seconds": retry.get("backoff_seconds", 0),
        },
        "continue_on_error": bool(raw.get("continue_on_error", False)),
    }
    if raw.get("foreach") is not None:  # a step without it keeps the shape it always had
        step["foreach"] = raw["foreach"]
        step["max_concurrency"] = raw.get("max_concurrency") or 1
    return step
