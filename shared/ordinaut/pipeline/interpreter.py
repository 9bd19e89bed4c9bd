"""JMESPath's tree interpreter under a work budget.

Every node visited costs one unit; every collection a projection, multi-select, flatten or
function builds, and both sides of an equality, cost their size counted through shared
references. So an expression that keeps doubling a list (``[@, @] | [@, @] | ...``) runs out
of budget long before its result could exhaust memory or time.
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.visitor import TreeInterpreter

from ordinaut.pipeline.datetimes import TimeFunctions
from ordinaut.pipeline.functions import DataFunctions, ExpressionError


class PipelineFunctions(DataFunctions, TimeFunctions):
    """Every function an expression may call: JMESPath's built-ins and Ordinaut's."""


def function_names() -> list[str]:
    """Every function an expression may call, built-in and added."""
    return sorted(PipelineFunctions.FUNCTION_TABLE)


def function_arity(name: str) -> tuple[int, bool] | None:
    """``(minimum arguments, variadic)`` for a function, or None if there is no such one."""
    spec = PipelineFunctions.FUNCTION_TABLE.get(name)
    if spec is None:
        return None
    sig = spec["signature"]
    return len(sig), bool(sig and sig[-1].get("variadic"))


class Budget:
    """Work units left for evaluation; shared by every expression of one render."""

    def __init__(self, units: int) -> None:
        self.limit = units
        self.left = units

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise ExpressionError(
                f"expression needs more work than max_expression_work ({self.limit}) allows",
                code="limit_exceeded",
            )


def _weight(value: Any, cap: int) -> int:
    """Number of values in ``value`` counted through shared references, stopping past ``cap``."""
    if not isinstance(value, (list, dict)):
        return 1
    count = 0
    stack: list[Any] = [value]
    while stack and count <= cap:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


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
        return self._charge(self._fns.call_function(node["value"], args))

    def visit_comparator(self, node: Any, value: Any) -> Any:
        if node["value"] not in ("eq", "ne"):
            return super().visit_comparator(node, value)
        # equality walks both sides, so charge for their full size first
        left = self._charge(self.visit(node["children"][0], value))
        right = self._charge(self.visit(node["children"][1], value))
        return self.COMPARATOR_FUNC[node["value"]](left, right)
