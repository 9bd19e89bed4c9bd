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
from dataclasses import dataclass
from typing import Any, TypeVar

from jmespath import functions as jp

F = TypeVar("F", bound=Callable[..., Any])


def signature(*arguments: Any) -> Callable[[F], F]:
    """JMESPath's argument-type declaration for a ``_func_`` method."""
    return jp.signature(*arguments)


@dataclass(frozen=True)
class FunctionDoc:
    """One expression function as ``GET /pipeline/functions`` and docs/pipeline.md show it.

    ``signature`` reads ``name(param: type, ...more: type) -> type`` with JMESPath's type
    names (``any``, ``array-string``, ``expref`` for ``&expression``; ``...`` marks one or
    more values); ``example`` is an expression as written inside ``${...}`` and ``result``
    the value it evaluates to (a test evaluates every example).
    """

    name: str
    signature: str
    description: str
    example: str
    result: Any


def documented(
    signature_text: str, description: str, example: str, result: Any
) -> Callable[[F], F]:
    """Attach a function's documentation to its ``_func_`` method (read by ``catalogue``)."""

    def mark(fn: F) -> F:
        name = signature_text.partition("(")[0]
        fn.doc = FunctionDoc(name, signature_text, description, example, result)  # type: ignore[attr-defined]
        return fn

    return mark


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
    @documented(
        "lower(text: string) -> string",
        "The text in lower case.",
        "lower('Hello World')",
        "hello world",
    )
    @signature(_STR)
    def _func_lower(self, s: str) -> str:
        return s.lower()

    @documented(
        "upper(text: string) -> string",
        "The text in upper case.",
        "upper('Hello')",
        "HELLO",
    )
    @signature(_STR)
    def _func_upper(self, s: str) -> str:
        return s.upper()

    @documented(
        "trim(text: string) -> string",
        "The text without leading and trailing whitespace.",
        "trim('  padded  ')",
        "padded",
    )
    @signature(_STR)
    def _func_trim(self, s: str) -> str:
        return s.strip()

    @documented(
        "replace(text: string, old: string, new: string) -> string",
        "Every occurrence of `old` replaced by `new`; `old` must not be empty.",
        "replace('a-b-c', '-', '+')",
        "a+b+c",
    )
    @signature(_STR, _STR, _STR)
    def _func_replace(self, s: str, old: str, new: str) -> str:
        if not old:
            raise ExpressionError("replace(): the text to replace is empty")
        if s.count(old) * max(len(new) - len(old), 0) + len(s) > self.max_string:
            raise ExpressionError("replace(): result too long", code="limit_exceeded")
        return s.replace(old, new)

    @documented(
        "split(text: string, separator: string) -> array",
        "The pieces of the text between occurrences of `separator` (which must not be empty).",
        "split('a,b,c', ',')",
        ["a", "b", "c"],
    )
    @signature(_STR, _STR)
    def _func_split(self, s: str, sep: str) -> list[str]:
        if not sep:
            raise ExpressionError("split(): the separator is empty")
        return s.split(sep)

    @documented(
        "concat(...values: any) -> string",
        "The values joined into one string: strings as they are, other values as compact JSON, nulls left out.",
        "concat('item-', `7`, `null`)",
        "item-7",
    )
    @signature({"types": [], "variadic": True})
    def _func_concat(self, *values: Any) -> str:
        return self._bounded("".join(text_of(v) for v in values if v is not None), "concat")

    @documented(
        "format(template: string, ...values: any) -> string",
        "The template with each `{}` replaced by the next value and each `{N}` by the N-th value (from 0); `{{` and `}}` write literal braces. Non-string values appear as compact JSON; a placeholder without a value is an error.",
        "format('{} has {} items', 'cart', `3`)",
        "cart has 3 items",
    )
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

    @documented(
        "substr(text: string, start: number, length: number) -> string",
        "At most `length` characters of the text from position `start` (0-based; a negative start counts from the end).",
        "substr('2026-12-04', `0`, `4`)",
        "2026",
    )
    @signature(_STR, {"types": ["number"]}, {"types": ["number"]})
    def _func_substr(self, s: str, start: float, length: float) -> str:
        begin = int(start)
        return s[begin : begin + max(int(length), 0)] if begin >= 0 else s[begin:][: int(length)]

    @documented(
        "truncate(text: string, length: number) -> string",
        "The text cut to at most `length` characters; a cut text ends in an ellipsis (…) within that length.",
        "truncate('Good morning', `5`)",
        "Good…",
    )
    @signature(_STR, {"types": ["number"]})
    def _func_truncate(self, s: str, length: float) -> str:
        n = max(int(length), 1)
        return s if len(s) <= n else s[: n - 1] + "…"

    @documented(
        "url_encode(text: string) -> string",
        "The text percent-encoded for a URL path segment or query value (every reserved character is encoded, `/` included).",
        "url_encode('a b/c')",
        "a%20b%2Fc",
    )
    @signature(_STR)
    def _func_url_encode(self, s: str) -> str:
        return urllib.parse.quote(s, safe="")

    @documented(
        "to_json(value: any) -> string",
        "The value as compact JSON text.",
        'to_json(`{"a": [1, 2]}`)',
        '{"a":[1,2]}',
    )
    @signature(_ANY)
    def _func_to_json(self, value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return self._bounded(text, "to_json")

    @documented(
        "from_json(text: string) -> any",
        "The value JSON text encodes; an error when the text is not JSON (NaN and Infinity are not) or nests deeper than max_json_depth.",
        "from_json('{\"ok\": true}')",
        {"ok": True},
    )
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

    @documented(
        "to_string(value: any) -> string",
        "A string as it is; any other value as compact JSON.",
        "to_string(`[1, 2]`)",
        "[1,2]",
    )
    @signature(_ANY)
    def _func_to_string(self, value: Any) -> str:
        return self._bounded(text_of(value), "to_string")

    @documented(
        "join(separator: string, items: array-string) -> string",
        "The strings of the list joined with `separator` between them.",
        'join(\', \', `["a", "b"]`)',
        "a, b",
    )
    @signature(_STR, {"types": ["array-string"]})
    def _func_join(self, sep: str, items: list[str]) -> str:
        return self._bounded(sep.join(items), "join")

    # -- numbers ---------------------------------------------------------------------------
    # Python integers have no size limit: squaring one 24 times (``multiply(@, @)`` chained)
    # or ``round(5, -10000000)`` (10**10000000 inside) takes seconds of CPU in a single call
    # that no budget check can interrupt. So every argument and result is bounded: integers
    # past MAX_INTEGER become floats, a float that overflows is an error naming the limit,
    # and ``digits`` is clamped to what a double can express.
    @documented(
        "round(value: number, digits: number) -> number",
        "The number rounded to `digits` decimal places (0 or fewer gives an integer; negative rounds to tens, hundreds...).",
        "round(`3.14159`, `2`)",
        3.14,
    )
    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_round(self, n: float, digits: float) -> float:
        places = int(max(-MAX_ROUND_DIGITS, min(MAX_ROUND_DIGITS, _finite(digits, "round"))))
        result = round(bounded_number(n, "round"), places)
        return bounded_number(int(result) if places <= 0 else result, "round")

    @documented(
        "add(a: number, b: number) -> number",
        "The sum a + b.",
        "add(`2`, `3`)",
        5,
    )
    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, a: float, b: float) -> float:
        return bounded_number(bounded_number(a, "add") + bounded_number(b, "add"), "add")

    @documented(
        "subtract(a: number, b: number) -> number",
        "The difference a - b.",
        "subtract(`10`, `4`)",
        6,
    )
    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_subtract(self, a: float, b: float) -> float:
        return bounded_number(
            bounded_number(a, "subtract") - bounded_number(b, "subtract"), "subtract"
        )

    @documented(
        "multiply(a: number, b: number) -> number",
        "The product a * b.",
        "multiply(`6`, `7`)",
        42,
    )
    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, a: float, b: float) -> float:
        return bounded_number(
            bounded_number(a, "multiply") * bounded_number(b, "multiply"), "multiply"
        )

    @documented(
        "divide(a: number, b: number) -> number",
        "The quotient a / b (a number with decimals); dividing by zero is an error.",
        "divide(`7`, `2`)",
        3.5,
    )
    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_divide(self, a: float, b: float) -> float:
        if b == 0:
            raise ExpressionError("divide(): division by zero")
        return bounded_number(bounded_number(a, "divide") / bounded_number(b, "divide"), "divide")

    @documented(
        "mod(a: number, b: number) -> number",
        "The remainder of a / b (with the sign of b); b = 0 is an error.",
        "mod(`7`, `3`)",
        1,
    )
    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_mod(self, a: float, b: float) -> float:
        if b == 0:
            raise ExpressionError("mod(): division by zero")
        return bounded_number(bounded_number(a, "mod") % bounded_number(b, "mod"), "mod")

    # -- lists and objects -----------------------------------------------------------------
    @documented(
        "first(items: array) -> any",
        "The first item of the list, or null when it is empty.",
        "first(`[3, 1, 2]`)",
        3,
    )
    @signature({"types": ["array"]})
    def _func_first(self, items: list[Any]) -> Any:
        return items[0] if items else None

    @documented(
        "last(items: array) -> any",
        "The last item of the list, or null when it is empty.",
        "last(`[3, 1, 2]`)",
        2,
    )
    @signature({"types": ["array"]})
    def _func_last(self, items: list[Any]) -> Any:
        return items[-1] if items else None

    @documented(
        "unique(items: array) -> array",
        "The list without repeated items, each kept at its first position.",
        "unique(`[1, 2, 1, 3]`)",
        [1, 2, 3],
    )
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

    @documented(
        "compact(items: array) -> array",
        "The list without its null items.",
        "compact(`[1, null, 2]`)",
        [1, 2],
    )
    @signature({"types": ["array"]})
    def _func_compact(self, items: list[Any]) -> list[Any]:
        return [item for item in items if item is not None]

    @documented(
        "items(object: object) -> array",
        "The object's `[key, value]` pairs, in order.",
        'items(`{"a": 1, "b": 2}`)',
        [["a", 1], ["b", 2]],
    )
    @signature({"types": ["object"]})
    def _func_items(self, obj: dict[str, Any]) -> list[list[Any]]:
        return [[k, v] for k, v in obj.items()]

    @documented(
        "from_items(pairs: array) -> object",
        "The object built from `[key, value]` pairs (keys must be strings; a later pair wins).",
        'from_items(`[["a", 1], ["b", 2]]`)',
        {"a": 1, "b": 2},
    )
    @signature({"types": ["array"]})
    def _func_from_items(self, pairs: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise ExpressionError("from_items(): each item must be [key, value]")
            out[pair[0]] = pair[1]
        return out

    @documented(
        "pick(object: object, keys: array-string) -> object",
        "The object with only the listed keys (those it has).",
        'pick(`{"a": 1, "b": 2, "c": 3}`, `["a", "c"]`)',
        {"a": 1, "c": 3},
    )
    @signature({"types": ["object"]}, {"types": ["array-string"]})
    def _func_pick(self, obj: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        return {k: obj[k] for k in keys if k in obj}

    @documented(
        "omit(object: object, keys: array-string) -> object",
        "The object without the listed keys.",
        'omit(`{"a": 1, "b": 2, "c": 3}`, `["b"]`)',
        {"a": 1, "c": 3},
    )
    @signature({"types": ["object"]}, {"types": ["array-string"]})
    def _func_omit(self, obj: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        drop = set(keys)
        return {k: v for k, v in obj.items() if k not in drop}

    @documented(
        "get(object: object|null, key: string, fallback: any) -> any",
        "The object's value at `key`, or `fallback` when the key is absent or the object is null (for keys that are not plain names, or computed ones).",
        "get(`{\"a\": 1}`, 'b', `0`)",
        0,
    )
    @signature({"types": ["object", "null"]}, _STR, _ANY)
    def _func_get(self, obj: dict[str, Any] | None, key: str, fallback: Any) -> Any:
        return obj.get(key, fallback) if obj is not None else fallback

    # -- defaults and choice ---------------------------------------------------------------
    @documented(
        "default(value: any, fallback: any) -> any",
        "`value` unless it is null, else `fallback`. Paths in `value` may be missing (a missing path is null here instead of an error).",
        "default(`null`, 'n/a')",
        "n/a",
    )
    @signature(_ANY, _ANY)
    def _func_default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None else value

    @documented(
        "if_else(condition: any, then: any, otherwise: any) -> any",
        '`then` when the condition is true, else `otherwise`. False, null, "", [] and {} are false; everything else (0 included) is true.',
        "if_else(`[]`, 'some', 'none')",
        "none",
    )
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


# JMESPath's own functions (their methods are JMESPath's), documented here: signature,
# description, an example and what it evaluates to.
JMESPATH_DOCS: dict[str, tuple[str, str, str, Any]] = {
    "abs": ("abs(value: number) -> number", "The absolute value.", "abs(`-3`)", 3),
    "avg": (
        "avg(values: array-number) -> number",
        "The mean of the numbers (null for an empty list).",
        "avg(`[1, 2, 6]`)",
        3.0,
    ),
    "ceil": (
        "ceil(value: number) -> number",
        "The smallest integer not below the number.",
        "ceil(`1.2`)",
        2,
    ),
    "contains": (
        "contains(subject: array|string, search: any) -> boolean",
        "Whether the list has the item, or the string has the substring.",
        "contains('good morning', 'morning')",
        True,
    ),
    "ends_with": (
        "ends_with(text: string, suffix: string) -> boolean",
        "Whether the text ends with `suffix`.",
        "ends_with('report.pdf', '.pdf')",
        True,
    ),
    "floor": (
        "floor(value: number) -> number",
        "The largest integer not above the number.",
        "floor(`1.8`)",
        1,
    ),
    "keys": (
        "keys(object: object) -> array",
        "The object's keys, in order.",
        'keys(`{"a": 1, "b": 2}`)',
        ["a", "b"],
    ),
    "length": (
        "length(value: string|array|object) -> number",
        "Characters in a string, items in a list, keys in an object.",
        "length('hello')",
        5,
    ),
    "map": (
        "map(&expression: expref, items: array) -> array",
        "The expression (after `&`) applied to each item of the list.",
        'map(&name, `[{"name": "a"}, {"name": "b"}]`)',
        ["a", "b"],
    ),
    "max": (
        "max(values: array-number|array-string) -> any",
        "The largest number or string of the list (null when empty).",
        "max(`[3, 9, 4]`)",
        9,
    ),
    "max_by": (
        "max_by(items: array, &key: expref) -> any",
        "The item whose key (the expression after `&`, a number or string) is largest.",
        'max_by(`[{"n": 1}, {"n": 5}]`, &n)',
        {"n": 5},
    ),
    "merge": (
        "merge(...objects: object) -> object",
        "One object with the keys of all of them; a later object's value wins.",
        'merge(`{"a": 1, "b": 2}`, `{"b": 3}`)',
        {"a": 1, "b": 3},
    ),
    "min": (
        "min(values: array-number|array-string) -> any",
        "The smallest number or string of the list (null when empty).",
        "min(`[3, 9, 4]`)",
        3,
    ),
    "min_by": (
        "min_by(items: array, &key: expref) -> any",
        "The item whose key (the expression after `&`, a number or string) is smallest.",
        'min_by(`[{"n": 1}, {"n": 5}]`, &n)',
        {"n": 1},
    ),
    "not_null": (
        "not_null(...values: any) -> any",
        "The first value that is not null (null if all are). Paths in its arguments may be missing.",
        "not_null(`null`, 'fallback')",
        "fallback",
    ),
    "reverse": (
        "reverse(value: array|string) -> any",
        "The list or string in reverse order.",
        "reverse(`[1, 2, 3]`)",
        [3, 2, 1],
    ),
    "sort": (
        "sort(values: array-string|array-number) -> array",
        "The numbers or strings in ascending order.",
        "sort(`[3, 1, 2]`)",
        [1, 2, 3],
    ),
    "sort_by": (
        "sort_by(items: array, &key: expref) -> array",
        "The items in ascending order of their key (the expression after `&`).",
        'sort_by(`[{"n": 2}, {"n": 1}]`, &n)',
        [{"n": 1}, {"n": 2}],
    ),
    "starts_with": (
        "starts_with(text: string, prefix: string) -> boolean",
        "Whether the text starts with `prefix`.",
        "starts_with('https://example.com', 'https://')",
        True,
    ),
    "sum": (
        "sum(values: array-number) -> number",
        "The sum of the numbers (0 for an empty list).",
        "sum(`[1, 2, 3]`)",
        6,
    ),
    "to_array": (
        "to_array(value: any) -> array",
        "A list as it is; any other value as a one-item list.",
        "to_array('x')",
        ["x"],
    ),
    "to_number": (
        "to_number(value: any) -> any",
        "A number as it is, a numeric string as its number, anything else null.",
        "to_number('42')",
        42,
    ),
    "type": (
        "type(value: any) -> string",
        "The JSON type: string, number, boolean, array, object or null.",
        "type(`[1]`)",
        "array",
    ),
    "values": (
        "values(object: object) -> array",
        "The object's values, in order.",
        'values(`{"a": 1, "b": 2}`)',
        [1, 2],
    ),
}
