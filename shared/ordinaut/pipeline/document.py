"""The pipeline document as text and as JSON: parsing YAML or JSON, and its shape bounds."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from ordinaut.documents import parse_text
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.templates import join_path

_MAX_NODES = 100_000
_MAX_PROBLEMS = 50


def parse_pipeline_text(text: str, *, limits: PipelineLimits | None = None) -> object:
    """A payload (or bare pipeline) read from JSON or YAML text; raises ``InvalidPipeline``."""
    return parse_text(text, max_bytes=(limits or PipelineLimits()).max_payload_bytes)


def check_document(
    value: Any, limits: PipelineLimits, root: str = "payload"
) -> list[dict[str, Any]]:
    """Problems making ``value`` unfit JSON: foreign types, depth, string length, size."""
    if _fits(value, limits):
        return []  # the usual case, found without building a path for every value
    problems: list[dict[str, Any]] = []
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    nodes = 0
    while stack and len(problems) < _MAX_PROBLEMS:
        item, path, depth = stack.pop()
        nodes += 1
        if nodes > _MAX_NODES:
            problems.append({"field": root, "message": f"more than {_MAX_NODES} values"})
            break
        if item is None or isinstance(item, (str, float, bool, int)):
            problem = _scalar_problem(item, path, limits)
            if problem is not None:
                problems.append(problem)
        elif depth >= limits.max_json_depth:
            problems.append(
                {
                    "field": path,
                    "message": f"nested deeper than max_json_depth ({limits.max_json_depth})",
                    "limit": "max_json_depth",
                }
            )
        elif isinstance(item, dict):
            problems.extend(_push_members(item, path, depth + 1, limits, stack))
        elif isinstance(item, list):
            stack.extend((sub, join_path(path, i), depth + 1) for i, sub in enumerate(item))
        else:
            problems.append(
                {"field": path, "message": f"{type(item).__name__} is not a JSON value"}
            )
    return sorted(problems, key=lambda p: p["field"])


def _fits(value: Any, limits: PipelineLimits) -> bool:
    """True only when ``check_document`` finds no problem: the same rules, checked without
    naming where, on plain JSON types (a document that fails any rule, or holds anything else,
    is walked again by the full check, which names each problem and stays the authority)."""
    max_length, max_depth = limits.max_string_length, limits.max_json_depth
    todo: list[tuple[Collection[Any], int]] = [((value,), 0)]  # members, and their depth
    nodes = 0
    while todo:
        members, depth = todo.pop()
        nodes += len(members)  # every value counts once, as in the full walk
        if nodes > _MAX_NODES:
            return False
        for item in members:
            kind = type(item)
            if kind is str:
                if len(item) > max_length:
                    return False
            elif kind is int or kind is bool or item is None:
                continue
            elif kind is dict or kind is list:
                if depth >= max_depth or (kind is dict and not _keys_fit(item, max_length)):
                    return False
                todo.append((item.values() if kind is dict else item, depth + 1))
            elif kind is not float or not math.isfinite(item):
                return False
    return True


def _keys_fit(item: dict[Any, Any], max_length: int) -> bool:
    return all(type(key) is str and len(key) <= max_length for key in item)


def _scalar_problem(item: Any, path: str, limits: PipelineLimits) -> dict[str, Any] | None:
    """What is wrong with a string, number, boolean or null, if anything."""
    if isinstance(item, str) and len(item) > limits.max_string_length:
        return _too_long(path, len(item), limits)
    if isinstance(item, float) and not math.isfinite(item):
        return {"field": path, "message": "must be a finite number"}
    return None


def _push_members(
    item: dict[Any, Any],
    path: str,
    depth: int,
    limits: PipelineLimits,
    stack: list[tuple[Any, str, int]],
) -> list[dict[str, Any]]:
    """Push an object's members onto ``stack`` to be checked; the problems of its keys."""
    problems: list[dict[str, Any]] = []
    for key, sub in item.items():
        if not isinstance(key, str):
            problems.append({"field": path, "message": f"key {key!r} is not a string"})
        elif len(key) > limits.max_string_length:
            problems.append(_too_long(path, len(key), limits))
        else:
            stack.append((sub, join_path(path, key), depth))
    return problems


def _too_long(path: str, length: int, limits: PipelineLimits) -> dict[str, Any]:
    return {
        "field": path,
        "message": f"string of {length} characters is longer than max_string_length "
        f"({limits.max_string_length})",
        "limit": "max_string_length",
    }
