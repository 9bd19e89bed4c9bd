"""The pipeline document as text and as JSON: parsing YAML or JSON, and its shape bounds."""

from __future__ import annotations

import math
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
    problems: list[dict[str, Any]] = []
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    nodes = 0
    while stack and len(problems) < _MAX_PROBLEMS:
        item, path, depth = stack.pop()
        nodes += 1
        if nodes > _MAX_NODES:
            problems.append({"field": root, "message": f"more than {_MAX_NODES} values"})
            break
        if isinstance(item, str):
            if len(item) > limits.max_string_length:
                problems.append(_too_long(path, len(item), limits))
        elif isinstance(item, float):
            if not math.isfinite(item):
                problems.append({"field": path, "message": "must be a finite number"})
        elif item is None or isinstance(item, (bool, int)):
            continue
        elif depth >= limits.max_json_depth:
            problems.append(
                {
                    "field": path,
                    "message": f"nested deeper than max_json_depth ({limits.max_json_depth})",
                    "limit": "max_json_depth",
                }
            )
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    problems.append({"field": path, "message": f"key {key!r} is not a string"})
                    continue
                if len(key) > limits.max_string_length:
                    problems.append(_too_long(path, len(key), limits))
                    continue
                stack.append((sub, join_path(path, key), depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, join_path(path, i), depth + 1) for i, sub in enumerate(item))
        else:
            problems.append(
                {"field": path, "message": f"{type(item).__name__} is not a JSON value"}
            )
    return sorted(problems, key=lambda p: p["field"])


def _too_long(path: str, length: int, limits: PipelineLimits) -> dict[str, Any]:
    return {
        "field": path,
        "message": f"string of {length} characters is longer than max_string_length "
        f"({limits.max_string_length})",
        "limit": "max_string_length",
    }
