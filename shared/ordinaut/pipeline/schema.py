"""A compact JSON Schema validator: the subset tool schemas use.

Supported: ``type`` (one or a list), ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties`` (bool or schema), ``minProperties``/``maxProperties``, ``items``,
``minItems``/``maxItems``, ``minLength``/``maxLength``, ``pattern``, ``minimum``/``maximum``,
``exclusiveMinimum``/``exclusiveMaximum`` (numbers), ``anyOf``, ``allOf``. Annotations
(``description``, ``title``, ``default``, ``examples``, ``format``, ...) are ignored; keywords
that would change validation but are not implemented are refused by ``check_schema``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ordinaut.pipeline.templates import join_path

Problem = tuple[str, str]
# For a value not known until run time: None if known, "string" if it will be a string,
# "any" if nothing is known about it.
Deferred = Callable[[Any], str | None]

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
UNSUPPORTED = frozenset(
    "$ref $defs definitions patternProperties propertyNames dependentRequired dependentSchemas "
    "if then else not oneOf contains uniqueItems prefixItems unevaluatedProperties multipleOf "
    "unevaluatedItems minContains maxContains".split()
)
_SCHEMA_KEYS = ("additionalProperties", "items")
_COUNT_KEYS = "minLength maxLength minItems maxItems minProperties maxProperties".split()
_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def type_of(value: Any) -> str:
    """The JSON type name of a Python value (``integer`` for whole numbers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(actual: str, wanted: Any) -> bool:
    names = wanted if isinstance(wanted, list) else [wanted]
    return actual in names or (actual == "integer" and "number" in names)


def validate(
    value: Any,
    schema: Any,
    path: str = "",
    *,
    deferred: Deferred | None = None,
    limit: int = 20,
) -> list[Problem]:
    """Problems of ``value`` against ``schema`` as ``(field path, message)``, at most ``limit``."""
    problems: list[Problem] = []
    _check(value, schema, path, deferred, problems)
    return problems[:limit]


def _check(
    value: Any, schema: Any, path: str, deferred: Deferred | None, out: list[Problem]
) -> None:
    if schema is False:
        out.append((path, "no value is allowed here"))
        return
    if not isinstance(schema, dict):
        return
    unknown = deferred(value) if deferred else None
    if unknown == "any":
        return
    actual = "string" if unknown == "string" else type_of(value)
    wanted = schema.get("type")
    if wanted is not None and not _type_ok(actual, wanted):
        shown = " or ".join(wanted) if isinstance(wanted, list) else wanted
        out.append((path, f"must be {shown}, not {actual}"))
        return
    if unknown is not None:  # a templated string: only its type is known now
        return
    if "enum" in schema and value not in schema["enum"]:
        out.append((path, f"must be one of {', '.join(map(repr, schema['enum']))}"))
    if "const" in schema and value != schema["const"]:
        out.append((path, f"must be {schema['const']!r}"))
    _check_shape(value, schema, actual, path, deferred, out)
    for sub in schema.get("allOf", []):
        _check(value, sub, path, deferred, out)
    if "anyOf" in schema and all(
        validate(value, sub, path, deferred=deferred, limit=1) for sub in schema["anyOf"]
    ):
        out.append((path, "matches none of the allowed forms (anyOf)"))


def _check_shape(
    value: Any,
    schema: dict[str, Any],
    actual: str,
    path: str,
    deferred: Deferred | None,
    out: list[Problem],
) -> None:
    """The keywords of ``value``'s own kind: members, items, length, pattern, range."""
    if isinstance(value, dict):
        _check_object(value, schema, path, deferred, out)
    elif isinstance(value, list):
        _bounds(len(value), schema, "minItems", "maxItems", "item(s)", path, out)
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _check(item, items, join_path(path, i), deferred, out)
    elif isinstance(value, str):
        _bounds(len(value), schema, "minLength", "maxLength", "character(s)", path, out)
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and re.search(pattern, value) is None:
            out.append((path, f"must match {pattern!r}"))
    elif actual in ("integer", "number"):
        _check_number(value, schema, path, out)


def _check_object(
    value: dict[str, Any],
    schema: dict[str, Any],
    path: str,
    deferred: Deferred | None,
    out: list[Problem],
) -> None:
    for name in schema.get("required", []):
        if name not in value:
            out.append((join_path(path, name), "is required"))
    _bounds(len(value), schema, "minProperties", "maxProperties", "field(s)", path, out)
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            _check(item, properties[key], join_path(path, key), deferred, out)
        elif extra is False:
            allowed = ", ".join(sorted(properties)) or "none"
            out.append((join_path(path, key), f"is not an allowed field (allowed: {allowed})"))
        elif isinstance(extra, dict):
            _check(item, extra, join_path(path, key), deferred, out)


def _bounds(
    size: int, schema: dict[str, Any], lo: str, hi: str, unit: str, path: str, out: list[Problem]
) -> None:
    if lo in schema and size < schema[lo]:
        out.append((path, f"must have at least {schema[lo]} {unit}"))
    if hi in schema and size > schema[hi]:
        out.append((path, f"must have at most {schema[hi]} {unit}"))


def _check_number(value: float, schema: dict[str, Any], path: str, out: list[Problem]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        out.append((path, f"must be at least {schema['minimum']}"))
    if "maximum" in schema and value > schema["maximum"]:
        out.append((path, f"must be at most {schema['maximum']}"))
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        out.append((path, f"must be greater than {schema['exclusiveMinimum']}"))
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        out.append((path, f"must be less than {schema['exclusiveMaximum']}"))


def check_schema(schema: Any, path: str = "schema") -> list[str]:
    """Problems that make ``schema`` unusable by ``validate`` (empty list when fine)."""
    if isinstance(schema, bool):
        return []
    if not isinstance(schema, dict):
        return [f"{path}: must be an object"]
    problems = [f"{path}: unsupported keyword {k!r}" for k in schema if k in UNSUPPORTED]
    wanted = schema.get("type")
    for name in wanted if isinstance(wanted, list) else [] if wanted is None else [wanted]:
        if name not in TYPES:
            problems.append(f"{path}.type: unknown type {name!r}")
    problems += _object_keyword_problems(schema, path)
    problems += _subschema_problems(schema, path)
    problems += _value_keyword_problems(schema, path)
    return problems


def _object_keyword_problems(schema: dict[str, Any], path: str) -> list[str]:
    """Problems of ``properties`` (each a schema) and ``required``."""
    problems: list[str] = []
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        problems.append(f"{path}.properties: must be an object")
    else:
        for key, sub in properties.items():
            problems += check_schema(sub, join_path(f"{path}.properties", key))
    required = schema.get("required", [])
    if not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
        problems.append(f"{path}.required: must be a list of field names")
    return problems


def _subschema_problems(schema: dict[str, Any], path: str) -> list[str]:
    """Problems of the other schemas ``schema`` holds: items and the like, anyOf and allOf."""
    problems: list[str] = []
    for key in _SCHEMA_KEYS:
        if key in schema:
            problems += check_schema(schema[key], f"{path}.{key}")
    for key in ("anyOf", "allOf"):
        subs = schema.get(key, [])
        if not isinstance(subs, list):
            problems.append(f"{path}.{key}: must be a list of schemas")
        else:
            for i, sub in enumerate(subs):
                problems += check_schema(sub, f"{path}.{key}[{i}]")
    return problems


def _value_keyword_problems(schema: dict[str, Any], path: str) -> list[str]:
    """Problems of the keywords holding plain values: counts, bounds, enum and pattern."""
    problems: list[str] = []
    for key in _COUNT_KEYS:
        if key in schema and (type_of(schema[key]) != "integer" or schema[key] < 0):
            problems.append(f"{path}.{key}: must be a non-negative integer")
    for key in _NUMBER_KEYS:
        if key in schema and type_of(schema[key]) not in ("integer", "number"):
            problems.append(f"{path}.{key}: must be a number")
    if "enum" in schema and not isinstance(schema["enum"], list):
        problems.append(f"{path}.enum: must be a list")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError) as exc:
            problems.append(f"{path}.pattern: not a regular expression ({exc})")
    return problems
