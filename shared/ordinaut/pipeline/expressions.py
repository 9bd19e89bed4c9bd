"""The expression language of ``${...}``: JMESPath plus a fixed set of pure functions.

Invariants: an expression cannot reach Python (JMESPath has no calls or attributes and the
function table is fixed); it always terminates within a work budget (every node visited and
every value built or handed to a function is charged by its size, numbers are bounded) and a
wall-clock deadline; a path it names must exist in the context unless the path
sits under a default (left of ``||``, first argument of ``default()``, any argument of
``not_null()``); and it starts from a named root (``params``, ``steps``, ...), never from the
whole context, so ``@`` or ``*`` at the top cannot enumerate secrets.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any, cast

import jmespath
from jmespath.exceptions import JMESPathError

from ordinaut.pipeline.functions import ExpressionError, truthy
from ordinaut.pipeline.interpreter import Budget, Interpreter, PipelineFunctions, function_arity

__all__ = ["Budget", "Expression", "ExpressionError", "Ref", "compile_expression", "truthy"]

Segment = str | int
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CHAIN = ("field", "subexpression", "index_expression")
_LENIENT_ALL = {"not_null"}
_LENIENT_FIRST = {"default"}


def format_path(path: tuple[Segment, ...]) -> str:
    """``params.a[0]."x-y"``: a path as it would be written in an expression."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += ("." if out else "") + (seg if _IDENT.match(seg) else json.dumps(seg))
    return out


@dataclass(frozen=True)
class Ref:
    """A path read from the context; ``lenient`` when a default covers its absence."""

    path: tuple[Segment, ...]
    lenient: bool

    @property
    def text(self) -> str:
        return format_path(self.path)


@dataclass(frozen=True, eq=False)
class Expression:
    """A parsed, checked expression. Build with ``compile_expression`` or ``compile_query``."""

    source: str
    ast: dict[str, Any]
    refs: tuple[Ref, ...]

    def evaluate(
        self,
        data: Any,
        *,
        budget: Budget | None = None,
        max_string: int = 256 * 1024,
        max_depth: int = 32,
    ) -> Any:
        """Evaluate against ``data``; a missing strict path raises naming the path."""
        for ref in self.refs:
            if not ref.lenient:
                _require(data, ref)
        spend = budget or Budget(500_000, seconds=1.0)
        interpreter = Interpreter(PipelineFunctions(max_string, max_depth), spend)
        try:
            return interpreter.visit(self.ast, data)
        except ExpressionError:
            raise
        except JMESPathError as exc:
            raise ExpressionError(str(exc).splitlines()[0]) from None
        except RecursionError:
            raise ExpressionError("value or expression nested too deeply") from None
        except Exception as exc:  # a pure evaluation failing must never look like a crash
            raise ExpressionError(f"evaluation failed: {type(exc).__name__}: {exc}") from None


def compile_expression(source: str, *, max_length: int = 2_000) -> Expression:
    """Parse and check an expression over the run context (named roots only)."""
    return _compile(source, max_length, True)


def compile_query(source: str, *, max_length: int = 2_000) -> Expression:
    """Parse and check a plain JMESPath query over arbitrary data (``transform``'s ``expr``)."""
    return _compile(source, max_length, False)


def _compile(source: str, max_length: int, over_context: bool) -> Expression:
    if len(source) > max_length:
        raise ExpressionError(
            f"expression longer than max_expression_length ({max_length})",
            code="limit_exceeded",
        )
    if not source.strip():
        raise ExpressionError("empty expression")
    return _parse(source, over_context)


@functools.lru_cache(maxsize=4096)
def _parse(source: str, over_context: bool) -> Expression:
    try:
        with warnings.catch_warnings():
            # jmespath warns (PendingDeprecationWarning) about a backtick literal that is not
            # JSON (`abc`), which it reads as a string; it stays accepted, and never turns into
            # an error where warnings are errors (the test suite)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            parsed = jmespath.compile(source).parsed
        ast = _negation_binds_paths(cast(dict[str, Any], parsed))
    except JMESPathError as exc:
        raise ExpressionError(f"does not parse: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ExpressionError("does not parse: nested too deeply") from None
    analyzer = _Analyzer()
    try:
        if over_context:
            analyzer.root(ast, lenient=False)
        else:
            analyzer.relative(ast)
    except RecursionError:
        raise ExpressionError("expression nested too deeply") from None
    return Expression(source, ast, tuple(analyzer.refs))


def _negation_binds_paths(node: Any) -> Any:
    """A copy of the tree where ``!a.b`` means ``!(a.b)``.

    JMESPath parses ``!a.b`` as ``(!a).b``, which is always null (a boolean has no fields);
    no one means that, and conditions such as ``!steps.check.output.ok`` silently fail.
    """
    if not isinstance(node, dict):
        return node
    children = [_negation_binds_paths(c) for c in node.get("children", [])]
    node = {**node, "children": children}
    if node["type"] in ("subexpression", "index_expression") and children:
        head = children[0]
        if isinstance(head, dict) and head["type"] == "not_expression":
            inner = {"type": node["type"], "children": [head["children"][0], *children[1:]]}
            return {"type": "not_expression", "children": [inner]}
    return node


def _chain(node: dict[str, Any]) -> tuple[list[Segment] | None, list[dict[str, Any]]]:
    """Split a path node into the segments it reads from its input and what follows."""
    kind = node["type"]
    if kind == "field":
        return [node["value"]], []
    if kind == "index_expression":
        left, index = node["children"]
        path, rest = _chain(left)
        if path is not None and not rest and index["type"] == "index":
            return path + [index["value"]], []
        return path, rest + [index]
    if kind == "subexpression":
        first, *others = node["children"]
        path, rest = ([], []) if first["type"] == "current" else _chain(first)
        if path is None:
            return None, []
        for child in others:
            more, tail = _chain(child) if not rest and child["type"] in _CHAIN else (None, [])
            if more is not None and not tail:
                path += more
            else:
                rest.append(child)
        return path, rest
    return None, []


class _Analyzer:
    """Collects the paths an expression reads and rejects what the language does not allow."""

    def __init__(self) -> None:
        self.refs: list[Ref] = []

    def root(self, node: dict[str, Any], lenient: bool) -> None:
        kind = node["type"]
        children = [c for c in node.get("children", []) if isinstance(c, dict)]
        if kind in _CHAIN:
            self._chain_root(node, children, lenient)
        elif kind in ("current", "identity"):
            raise ExpressionError(
                "'@' and '*' cannot range over the whole context; start with a name such as params"
            )
        elif kind in ("projection", "value_projection", "filter_projection", "pipe", "flatten"):
            self._head_root(children, lenient)
        elif kind == "or_expression":
            self.root(children[0], True)
            self.root(children[1], lenient)
        elif kind == "function_expression":
            self._function_root(node, children, lenient)
        elif kind == "expref":
            self.relative(node)
        else:  # comparator, and/not, multi-selects, key_val_pair, literal, slice, index
            for child in children:
                self.root(child, lenient)

    def _head_root(self, children: list[dict[str, Any]], lenient: bool) -> None:
        """The first child reads the context; the others, what it gave."""
        self.root(children[0], lenient)
        for child in children[1:]:
            self.relative(child)

    def _chain_root(
        self, node: dict[str, Any], children: list[dict[str, Any]], lenient: bool
    ) -> None:
        path, rest = _chain(node)
        if path is None:  # e.g. [a, b].x or f(a).b: the head reads the context
            self._head_root(children, lenient)
            return
        if not path:
            raise ExpressionError("'@' cannot stand for the whole context; start with a name")
        self.refs.append(Ref(tuple(path), lenient))
        for child in rest:
            self.relative(child)

    def _function_root(
        self, node: dict[str, Any], children: list[dict[str, Any]], lenient: bool
    ) -> None:
        self._function(node)
        name = node["value"]
        for i, child in enumerate(children):
            if child["type"] == "expref":
                self.relative(child)
                continue
            covered = name in _LENIENT_ALL or (name in _LENIENT_FIRST and i == 0)
            self.root(child, lenient or covered)

    def relative(self, node: dict[str, Any]) -> None:
        """A sub-expression evaluated against a value the expression already holds."""
        if node["type"] == "function_expression":
            self._function(node)
        for child in node.get("children", []):
            if isinstance(child, dict):
                self.relative(child)

    @staticmethod
    def _function(node: dict[str, Any]) -> None:
        name = node["value"]
        arity = function_arity(name)
        if arity is None:
            raise ExpressionError(f"unknown function {name}()")
        count = len(node["children"])
        minimum, variadic = arity
        if count < minimum or (count > minimum and not variadic):
            expected = f"at least {minimum}" if variadic else str(minimum)
            raise ExpressionError(f"{name}() takes {expected} argument(s), got {count}")


def _require(data: Any, ref: Ref) -> None:
    current = data
    for depth, seg in enumerate(ref.path):
        parent = format_path(ref.path[:depth]) or "the context"
        if isinstance(seg, int):
            if not isinstance(current, list):
                why = f"{parent} is not a list"
            elif -len(current) <= seg < len(current):
                current = current[seg]
                continue
            else:
                why = f"{parent} has {len(current)} item(s)"
        elif isinstance(current, dict):
            if seg in current:
                current = current[seg]
                continue
            why = f"{parent} has no {seg!r}"
        else:
            why = f"{parent} is {'null' if current is None else type(current).__name__}"
        raise ExpressionError(
            f"missing path {ref.text} ({why}); give a default with || or default()"
        )
