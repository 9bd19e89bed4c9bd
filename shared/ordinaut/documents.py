"""Task and pipeline documents as text: JSON or YAML, read the same way everywhere.

The API (``pipeline.document``, YAML bodies and extension files) and the ``ordinaut`` task
commands (``-f task.yaml``, in a client install too) read text here: safe YAML without
anchors or aliases (no expansion bombs) and without timestamp types (an unquoted
``2030-01-01T00:00:00Z`` stays the text it is), JSON first, and an error naming the line and
column. Needs only PyYAML, which a client install has.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ordinaut.errors import InvalidPipeline


@functools.cache
def _loader() -> Any:
    """Safe YAML without anchors/aliases (no expansion bombs) and without timestamp types.
    Built on first use: PyYAML is imported only where YAML is read (a CLI file, an HTTP tools
    file), not by every process that imports this module (the API's cold start)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event: yaml.Event = self.current_event  # check_event read it ahead
                # the pure-Python parser's marks (this loader's) are always yaml.error.Mark
                mark = event.start_mark if isinstance(event.start_mark, yaml.error.Mark) else None
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases (*name) are not accepted", mark
                )
            return super().compose_node(parent, index)

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


def parse_text(text: str, *, max_bytes: int) -> object:
    """A document read from JSON or YAML text of at most ``max_bytes`` (UTF-8); raises
    ``InvalidPipeline`` naming the limit or where the text stopped parsing."""
    if len(text.encode("utf-8")) > max_bytes:
        raise InvalidPipeline(
            f"pipeline text is larger than max_payload_bytes ({max_bytes})",
            details=[
                {
                    "field": "payload",
                    "message": f"at most {max_bytes} bytes",
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
