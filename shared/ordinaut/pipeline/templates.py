"""``${...}`` templates inside strings, and rendering of templated argument trees.

A string that is exactly one ``${expr}`` renders to the expression's value with its JSON type;
a string with text around expressions renders as text (non-strings as compact JSON). ``$${``
writes a literal ``${``. Rendering walks the compiled tree once: a value that an expression
produced is placed as data and never scanned again, so it is never evaluated twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ordinaut.pipeline.expressions import Budget, Expression, ExpressionError, compile_expression
from ordinaut.pipeline.functions import text_of
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.records import json_size

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_QUOTES = "'\"`"


def join_path(base: str, key: str | int) -> str:
    """``base.key``, ``base["odd key"]`` or ``base[3]``: how problems name a field."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if _KEY.match(key):
        return f"{base}.{key}" if base else key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{base}["{escaped}"]'


@dataclass(frozen=True, eq=False)
class Template:
    """A string holding at least one ``${...}``, split into literal text and expressions."""

    source: str
    parts: tuple[str | Expression, ...]

    @property
    def whole(self) -> Expression | None:
        """The expression when the string is exactly one ``${...}``, else None."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Expression):
            return self.parts[0]
        return None

    @property
    def expressions(self) -> tuple[Expression, ...]:
        return tuple(p for p in self.parts if isinstance(p, Expression))

    def render(self, data: Any, *, budget: Budget, max_string: int, max_depth: int = 32) -> Any:
        """The whole expression's value, or the text with every expression substituted."""
        whole = self.whole
        if whole is not None:
            return whole.evaluate(data, budget=budget, max_string=max_string, max_depth=max_depth)
        pieces: list[str] = []
        size = 0
        for part in self.parts:
            text = (
                part
                if isinstance(part, str)
                else text_of(
                    part.evaluate(data, budget=budget, max_string=max_string, max_depth=max_depth)
                )
            )
            size += len(text)
            if size > max_string:
                raise ExpressionError(
                    f"rendered text longer than {max_string} characters", code="limit_exceeded"
                )
            pieces.append(text)
        return "".join(pieces)


def parse_template(text: str, *, max_expression_length: int = 2_000) -> Template | str:
    """A ``Template`` if ``text`` holds ``${...}``, else the literal (``$${`` unescaped)."""
    if "${" not in text:
        return text
    parts: list[str | Expression] = []
    literal: list[str] = []
    i = 0
    while True:
        start = text.find("${", i)
        if start < 0:
            literal.append(text[i:])
            break
        if start > 0 and text[start - 1] == "$":
            literal.append(text[i : start - 1] + "${")
            i = start + 2
            continue
        literal.append(text[i:start])
        end = _closing_brace(text, start + 2)
        if end < 0:
            raise ExpressionError(f"'${{' at position {start} is never closed with '}}'")
        if any(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(compile_expression(text[start + 2 : end], max_length=max_expression_length))
        i = end + 1
    if any(literal):
        parts.append("".join(literal))
    if not any(isinstance(p, Expression) for p in parts):
        return "".join(p for p in parts if isinstance(p, str))
    return Template(text, tuple(parts))


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in _QUOTES:
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


OnError = Callable[[str, ExpressionError], None]


def compile_tree(value: Any, path: str, on_error: OnError, *, max_expression_length: int) -> Any:
    """Replace each templated string in a JSON tree with its ``Template``; keys stay literal."""
    if isinstance(value, str):
        try:
            return parse_template(value, max_expression_length=max_expression_length)
        except ExpressionError as exc:
            on_error(path, exc)
            return value
    if isinstance(value, dict):
        return {
            k: compile_tree(
                v, join_path(path, k), on_error, max_expression_length=max_expression_length
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            compile_tree(
                v, join_path(path, i), on_error, max_expression_length=max_expression_length
            )
            for i, v in enumerate(value)
        ]
    return value


def iter_templates(tree: Any, path: str) -> Iterator[tuple[str, Template]]:
    """Every ``Template`` in a compiled tree with the field path where it sits."""
    if isinstance(tree, Template):
        yield path, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from iter_templates(v, join_path(path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from iter_templates(v, join_path(path, i))


def has_template(tree: Any) -> bool:
    return next(iter_templates(tree, ""), None) is not None


def render_tree(tree: Any, leaf: Callable[[Template, str], Any], path: str = "") -> Any:
    """A copy of ``tree`` with each ``Template`` replaced by ``leaf(template, path)``."""
    if isinstance(tree, Template):
        return leaf(tree, path)
    if isinstance(tree, dict):
        return {k: render_tree(v, leaf, join_path(path, k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render_tree(v, leaf, join_path(path, i)) for i, v in enumerate(tree)]
    return tree


class Renderer:
    """Renders a step's templates against one context, within a byte and a work budget."""

    def __init__(self, data: Any, *, limits: PipelineLimits) -> None:
        self.data = data
        self.max_bytes = limits.max_render_bytes
        self.max_depth = limits.max_json_depth
        self.used = 0
        self.budget = limits.budget()

    def __call__(self, template: Template, path: str) -> Any:
        left = self.max_bytes - self.used
        try:
            value = template.render(
                self.data, budget=self.budget, max_string=max(left, 0), max_depth=self.max_depth
            )
        except ExpressionError as exc:
            raise ExpressionError(f"{path or 'value'}: {exc.message}", code=exc.code) from None
        self.used += len(value) if isinstance(value, str) else json_size(value, left)
        if self.used > self.max_bytes:
            raise ExpressionError(
                f"{path or 'value'}: rendered arguments exceed max_render_bytes ({self.max_bytes})",
                code="limit_exceeded",
            )
        return value

    def render(self, tree: Any, path: str = "") -> Any:
        return render_tree(tree, self, path)
