"""JMESPath's tree interpreter under a work budget.

Every node visited costs one unit; every collection a projection, multi-select, flatten or
function builds or receives, and both sides of an equality, cost their size counted through
shared references (strings by their length, integers by their bits). So an expression that keeps doubling a list (``[@, @] | [@, @] | ...``) runs out
of budget long before its result could exhaust memory or time.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import jmespath
from jmespath.visitor import TreeInterpreter

from ordinaut.pipeline.datetimes import TimeFunctions
from ordinaut.pipeline.functions import (
    JMESPATH_DOCS,
    DataFunctions,
    ExpressionError,
    FunctionDoc,
)


class PipelineFunctions(DataFunctions, TimeFunctions):
    """Every function an expression may call: JMESPath's built-ins and Ordinaut's."""


def function_names() -> list[str]:
    """Every function an expression may call, built-in and added."""
    return sorted(PipelineFunctions.FUNCTION_TABLE)


@functools.cache
def catalogue() -> tuple[FunctionDoc, ...]:
    """Every function an expression may call, documented, sorted by name: the body of
    ``GET /pipeline/functions`` and the function list of docs/pipeline.md.

    Read from the table the evaluator calls through, so a function cannot be callable and
    missing here; one without documentation raises (tests/unit/pipeline/test_pipeline_catalogue.py
    keeps every entry documented, its signature in step with the declared types and its
    example true).
    """
    docs = []
    for name, spec in sorted(PipelineFunctions.FUNCTION_TABLE.items()):
        doc = getattr(spec["function"], "doc", None)
        if doc is None and name in JMESPATH_DOCS:
            doc = FunctionDoc(name, *JMESPATH_DOCS[name])
        if not isinstance(doc, FunctionDoc) or doc.name != name:
            raise LookupError(f"expression function {name}() has no documentation")
        docs.append(doc)
    return tuple(docs)


def function_arity(name: str) -> tuple[int, bool] | None:
    """``(minimum arguments, variadic)`` for a function, or None if there is no such one."""
    spec = PipelineFunctions.FUNCTION_TABLE.get(name)
    if spec is None:
        return None
    sig = spec["signature"]
    return len(sig), bool(sig and sig[-1].get("variadic"))


class Budget:
    """Work units left for evaluation; shared by every expression of one render.

    Units measure the size of what evaluation touches (see ``_weight``), so the units an
    expression may spend bound the time it can take. ``seconds`` adds a wall-clock deadline,
    checked every ``CHECK_EVERY`` units: the hard stop when a machine is slower than the
    units assume. Every single operation between two checks is itself bounded (strings by
    ``max_render_bytes``, integers by ``functions.MAX_INTEGER``, sorts charged n log n).
    """

    CHECK_EVERY = 2_048

    def __init__(self, units: int, *, seconds: float | None = None) -> None:
        self.limit = units
        self.left = units
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds if seconds else None
        self._check_at = units - self.CHECK_EVERY

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise ExpressionError(
                f"expression needs more work than max_expression_work ({self.limit}) allows",
                code="limit_exceeded",
            )
        if self._deadline is not None and self.left <= self._check_at:
            self._check_at = self.left - self.CHECK_EVERY
            if time.monotonic() > self._deadline:
                raise ExpressionError(
                    f"expression ran longer than max_expression_ms ({(self.seconds or 0) * 1000:g} ms)",
                    code="limit_exceeded",
                )


# One unit per value, plus one per STRING_UNIT characters of a string and one per 64 bits of
# an integer: work is charged by the size of values, not per operation, so copying a 256 KB
# string a thousand times costs what it takes.
STRING_UNIT = 64


def _weight(value: Any, cap: int) -> int:
    """Units ``value`` is worth, counted through shared references, stopping past ``cap``."""
    if isinstance(value, str):
        return 1 + len(value) // STRING_UNIT
    if not isinstance(value, (list, dict)):
        return 1 + (value.bit_length() // 64 if isinstance(value, int) else 0)
    count = 0
    stack: list[Any] = [value]
    while stack and count <= cap:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
            count += sum(len(k) for k in item) // STRING_UNIT
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            count += len(item) // STRING_UNIT
    return count


_SORTS = frozenset({"sort", "sort_by", "max_by", "min_by"})


class Interpreter(TreeInterpreter):
    """JMESPath's interpreter, charging a ``Budget`` for each node and collection built."""

    def __init__(self, functions: PipelineFunctions, budget: Budget) -> None:
        super().__init__(jmespath.Options(custom_functions=functions))
        self._fns = functions
        self._budget = budget

    def _charge(self, value: Any) -> Any:
        self._budget.spend(_weight(value, self._budget.left + 1))
        return value

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        self._budget.spend(1)
        return super().visit(node, *args, **kwargs)

    def visit_multi_select_list(self, node: Any, value: Any) -> Any:
        return self._charge(super().visit_multi_select_list(node, value))

    def visit_multi_select_dict(self, node: Any, value: Any) -> Any:
        return self._charge(super().visit_multi_select_dict(node, value))

    def visit_flatten(self, node: Any, value: Any) -> Any:
        return self._charge(super().visit_flatten(node, value))

    def visit_projection(self, node: Any, value: Any) -> Any:
        return self._charge(super().visit_projection(node, value))

    def visit_value_projection(self, node: Any, value: Any) -> Any:
        return self._charge(super().visit_value_projection(node, value))

    def visit_filter_projection(self, node: Any, value: Any) -> Any:
        return self._charge(super().visit_filter_projection(node, value))

    def visit_function_expression(self, node: Any, value: Any) -> Any:
        args = [self._charge(self.visit(child, value)) for child in node["children"]]
        if node["value"] in _SORTS and args and isinstance(args[0], list) and len(args[0]) > 1:
            # a sort compares n log n times, not n
            self._budget.spend(int(len(args[0]) * math.log2(len(args[0]))))
        return self._charge(self._fns.call_function(node["value"], args))

    def visit_comparator(self, node: Any, value: Any) -> Any:
        if node["value"] not in ("eq", "ne"):
            return super().visit_comparator(node, value)
        # equality walks both sides, so charge for their full size first
        left = self._charge(self.visit(node["children"][0], value))
        right = self._charge(self.visit(node["children"][1], value))
        return self.COMPARATOR_FUNC[node["value"]](left, right)
