"""The pipeline document as text and as JSON: parsing YAML or JSON, and its shape bounds."""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.templates import join_path

_MAX_NODES = 100_000
_MAX_PROBLEMS = 50


class _Loader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases (no expansion bombs) and without timestamp types."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event: yaml.Event = self.current_event  # check_event read it ahead
            # the pure-Python parser's marks (this loader's) are always yaml.error.Mark
            mark = event.start_mark if isinstance(event.start_mark, yaml.error.Mark) else None
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not accepted", mark
            )
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_pipeline_text(text: str, *, limits: PipelineLimits | None = None) -> object:
    """A payload (or bare pipeline) read from JSON or YAML text; raises ``InvalidPipeline``."""
    bound = (limits or PipelineLimits()).max_payload_bytes
    if len(text.encode("utf-8")) > bound:
        raise InvalidPipeline(
            f"pipeline text is larger than max_payload_bytes ({bound})",
            details=[
                {
                    "field": "payload",
                    "message": f"at most {bound} bytes",
                    "limit": "max_payload_bytes",
                }
            ],
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        json_error = exc
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except (yaml.YAMLError, RecursionError) as exc:
        yaml_error = exc
    # Text that opens like JSON was meant as JSON: its error is the useful one.
    where: tuple[int | None, int | None, str]
    if text.lstrip()[:1] in ("{", "["):
        where = (json_error.lineno, json_error.colno, json_error.msg)
        kind = "JSON"
    else:
        where = _yaml_position(yaml_error)
        kind = "YAML"
    line, column, problem = where
    at = f" at line {line}, column {column}" if line else ""
    raise InvalidPipeline(
        f"not valid {kind}{at}: {problem}"[:500],
        details=[
            {
                "field": "payload",
                "message": f"not valid {kind}: {problem}"[:500],
                "line": line,
                "column": column,
            }
        ],
    ) from None


def _yaml_position(exc: BaseException) -> tuple[int | None, int | None, str]:
    """1-based line and column of a YAML error (where the parser noticed it), and its reason."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark, context = exc.problem_mark or exc.context_mark, exc.context_mark
        problem = exc.problem or exc.context or str(exc)
        if exc.problem and exc.context and context is not None:
            # "expected ',' or ']' ... (while parsing a flow sequence at line 2, column 11)"
            problem += f" ({exc.context} at line {context.line + 1}, column {context.column + 1})"
        problem = problem.replace("\n", " ")
        if mark is not None:
            return mark.line + 1, mark.column + 1, problem
        return None, None, problem
    if isinstance(exc, RecursionError):
        return None, None, "nested too deeply"
    return None, None, str(exc).replace("\n", " ")


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
