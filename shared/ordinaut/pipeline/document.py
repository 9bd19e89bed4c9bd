"""The pipeline document as text and as JSON: parsing YAML or JSON, and its shape bounds."""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.templates import join_path

_MAX_NODES = 100_000
_MAX_PROBLEMS = 50


@functools.cache
def _loader() -> Any:
    """Safe YAML without anchors/aliases (no expansion bombs) and without timestamp types.
    Built on first use: PyYAML is imported only where YAML is read (a CLI file, an HTTP tools
    file), not by every process that validates JSON payloads."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases (*name) are not accepted", event.start_mark
                )
            return super().compose_node(parent, index)

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


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
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # a SafeLoader
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
    import yaml

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
