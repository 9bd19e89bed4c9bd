"""The fixed set of pure functions the expression language adds to JMESPath (data side;
time functions live in ``datetimes``), and the error every expression failure raises.

Nothing here reaches Python objects, the clock, the network or the file system: ``now`` is a
value in the context, and every string a function builds is checked against a size bound.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from jmespath import functions as jp

F = TypeVar("F", bound=Callable[..., Any])


def signature(*arguments: Any) -> Callable[[F], F]:
    """JMESPath's argument-type declaration for a ``_func_`` method."""
    return jp.signature(*arguments)


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\d*)\}")
_STR: Any = {"types": ["string"]}
_ANY: Any = {"types": []}


class ExpressionError(Exception):
    """An expression failed to parse, to check or to evaluate; ``code`` names the kind."""

    def __init__(self, message: str, *, code: str = "expression_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def text_of(value: Any) -> str:
    """How a value reads inside a larger string: strings as-is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class BoundedFunctions(jp.Functions):
    """JMESPath's built-ins; ``max_string`` bounds every string a function builds."""

    def __init__(self, max_string: int = 256 * 1024, max_depth: int = 32) -> None:
        self.max_string = max_string
        self.max_depth = max_depth

    def _bounded(self, text: str, fn: str) -> str:
        if len(text) > self.max_string:
            raise ExpressionError(
                f"{fn}(): result longer than {self.max_string} characters", code="limit_exceeded"
            )
        return text


class DataFunctions(BoundedFunctions):
    """Functions over strings, numbers, lists and objects, and defaults."""

    # -- strings ---------------------------------------------------------------------------
    @signature(_STR)
    def _func_lower(self, s: str) -> str:
        return s.lower()

    @signature(_STR)
    def _func_upper(self, s: str) -> str:
        return s.upper()

    @signature(_STR)
    def _func_trim(self, s: str) -> str:
        return s.strip()

    @signature(_STR, _STR, _STR)
    def _func_replace(self, s: str, old: str, new: str) -> str:
        if not old:
            raise ExpressionError("replace(): the text to replace is empty")
        if s.count(old) * max(len(new) - len(old), 0) + len(s) > self.max_string:
            raise ExpressionError("replace(): result too long", code="limit_exceeded")
        return s.replace(old, new)

    @signature(_STR, _STR)
    def _func_split(self, s: str, sep: str) -> list[str]:
        if not sep:
            raise ExpressionError("split(): the separator is empty")
        return s.split(sep)

    @signature({"types": [], "variadic": True})
    def _func_concat(self, *values: Any) -> str:
        return self._bounded("".join(text_of(v) for v in values if v is not None), "concat")

    @signature({"types": ["string"]}, {"types": [], "variadic": True})
    def _func_format(self, template: str, *args: Any) -> str:
        position = iter(range(len(args)))

        def fill(match: re.Match[str]) -> str:
            token = match.group(0)
            if token in ("{{", "}}"):
                return token[0]
            index = int(match.group(1)) if match.group(1) else next(position, len(args))
            if index >= len(args):
                raise ExpressionError(f"format(): no argument for {token}")
            return text_of(args[index])

        return self._bounded(_PLACEHOLDER.sub(fill, template), "format")

    @signature(_STR, {"types": ["number"]}, {"types": ["number"]})
    def _func_substr(self, s: str, start: float, length: float) -> str:
        begin = int(start)
        return s[begin : begin + max(int(length), 0)] if begin >= 0 else s[begin:][: int(length)]

    @signature(_STR, {"types": ["number"]})
    def _func_truncate(self, s: str, length: float) -> str:
        n = max(int(length), 1)
        return s if len(s) <= n else s[: n - 1] + "…"

    @signature(_STR)
    def _func_url_encode(self, s: str) -> str:
        return urllib.parse.quote(s, safe="")

    @signature(_ANY)
    def _func_to_json(self, value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return self._bounded(text, "to_json")

    @signature(_STR)
    def _func_from_json(self, s: str) -> Any:
        if _json_nesting(s) > self.max_depth:
            raise ExpressionError(
                f"from_json(): JSON nested deeper than max_json_depth ({self.max_depth})",
                code="limit_exceeded",
            )
        try:
            return json.loads(s, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise ExpressionError(f"from_json(): not JSON ({exc})") from None

    @signature(_ANY)
    def _func_to_string(self, value: Any) -> str:
        return self._bounded(text_of(value), "to_string")

    @signature(_STR, {"types": ["array-string"]})
    def _func_join(self, sep: str, items: list[str]) -> str:
        return self._bounded(sep.join(items), "join")

    # -- numbers ---------------------------------------------------------------------------
    # Python integers have no size limit: squaring one 24 times (``multiply(@, @)`` chained)
    # or ``round(5, -10000000)`` (10**10000000 inside) takes seconds of CPU in a single call
    # that no budget check can interrupt. So every argument and result is bounded: integers
    # past MAX_INTEGER become floats, a float that overflows is an error naming the limit,
    # and ``digits`` is clamped to what a double can express.
    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_round(self, n: float, digits: float) -> float:
        places = int(max(-MAX_ROUND_DIGITS, min(MAX_ROUND_DIGITS, _finite(digits, "round"))))
        result = round(bounded_number(n, "round"), places)
        return bounded_number(int(result) if places <= 0 else result, "round")

    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, a: float, b: float) -> float:
        return bounded_number(bounded_number(a, "add") + bounded_number(b, "add"), "add")

    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_subtract(self, a: float, b: float) -> float:
        return bounded_number(
            bounded_number(a, "subtract") - bounded_number(b, "subtract"), "subtract"
        )

    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, a: float, b: float) -> float:
        return bounded_number(
            bounded_number(a, "multiply") * bounded_number(b, "multiply"), "multiply"
        )

    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_divide(self, a: float, b: float) -> float:
        if b == 0:
            raise ExpressionError("divide(): division by zero")
        return bounded_number(bounded_number(a, "divide") / bounded_number(b, "divide"), "divide")

    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_mod(self, a: float, b: float) -> float:
        if b == 0:
            raise ExpressionError("mod(): division by zero")
        return bounded_number(bounded_number(a, "mod") % bounded_number(b, "mod"), "mod")

    # -- lists and objects -----------------------------------------------------------------
    @signature({"types": ["array"]})
    def _func_first(self, items: list[Any]) -> Any:
        return items[0] if items else None

    @signature({"types": ["array"]})
    def _func_last(self, items: list[Any]) -> Any:
        return items[-1] if items else None

    @signature({"types": ["array"]})
    def _func_unique(self, items: list[Any]) -> list[Any]:
        seen: set[str] = set()
        out = []
        for item in items:
            key = json.dumps(item, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append(item)
        return out

    @signature({"types": ["array"]})
    def _func_compact(self, items: list[Any]) -> list[Any]:
        return [item for item in items if item is not None]

    @signature({"types": ["object"]})
    def _func_items(self, obj: dict[str, Any]) -> list[list[Any]]:
        return [[k, v] for k, v in obj.items()]

    @signature({"types": ["array"]})
    def _func_from_items(self, pairs: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise ExpressionError("from_items(): each item must be [key, value]")
            out[pair[0]] = pair[1]
        return out

    @signature({"types": ["object"]}, {"types": ["array-string"]})
    def _func_pick(self, obj: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        return {k: obj[k] for k in keys if k in obj}

    @signature({"types": ["object"]}, {"types": ["array-string"]})
    def _func_omit(self, obj: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        drop = set(keys)
        return {k: v for k, v in obj.items() if k not in drop}

    @signature({"types": ["object", "null"]}, _STR, _ANY)
    def _func_get(self, obj: dict[str, Any] | None, key: str, fallback: Any) -> Any:
        return obj.get(key, fallback) if obj is not None else fallback

    # -- defaults and choice ---------------------------------------------------------------
    @signature(_ANY, _ANY)
    def _func_default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None else value

    @signature(_ANY, _ANY, _ANY)
    def _func_if_else(self, condition: Any, then: Any, otherwise: Any) -> Any:
        return then if truthy(condition) else otherwise


MAX_INTEGER = 2**63
# Past +-330 digits rounding no longer changes any value that is left (floats have ~17
# significant digits and at most 308 decimal places either side; integers are below 2**63),
# so clamping loses nothing and keeps 10**digits small.
MAX_ROUND_DIGITS = 330
_RANGE = "number out of range (integers past 2**63 become floats; a float ends at ~1.8e308)"


def _finite(n: float, fn: str) -> float:
    if isinstance(n, float) and not math.isfinite(n):
        raise ExpressionError(f"{fn}(): {_RANGE}", code="limit_exceeded")
    return n


def bounded_number(n: float, fn: str) -> float:
    """``n`` when it is a float or an integer within +-2**63; a larger integer as a float;
    an error naming the limit when even a float cannot hold it (or it is inf or NaN)."""
    if isinstance(n, int) and not isinstance(n, bool) and not -MAX_INTEGER <= n <= MAX_INTEGER:
        try:
            return float(n)
        except OverflowError:
            raise ExpressionError(f"{fn}(): {_RANGE}", code="limit_exceeded") from None
    return _finite(n, fn)


def truthy(value: Any) -> bool:
    """JMESPath truth: false, null, "", [] and {} are false; everything else (even 0) true."""
    return not (value is None or value is False or value in ("", [], {}))


def _json_nesting(text: str) -> int:
    """Deepest ``[``/``{`` nesting of JSON text (brackets inside strings ignored); linear."""
    if text.count("[") + text.count("{") <= 1:
        return 1
    depth = deepest = 0
    quoted = escaped = False
    for char in text:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
