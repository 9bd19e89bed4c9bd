"""JSON values PostgreSQL stores exactly as given (jsonb, read back with orjson), or the
fields that would not be.

Not storable as given: NaN and the infinities (JSON writers turn them into ``null``), integers
outside ``INT_MIN..INT_MAX`` (read back rounded to a float), and text, values and keys alike,
holding NUL (PostgreSQL refuses it) or a lone UTF-16 surrogate (no UTF-8 encoder takes it).
``problems`` names each one; the API refuses them in request bodies (``ordinaut.api.strict``),
event ingestion in payloads from every source (``ordinaut.ingest``).
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_PROBLEMS = 50
INT_MIN = -(2**63)  # orjson reads i64 and u64 back as integers, anything wider as a float
INT_MAX = 2**64 - 1

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")  # a surrogate pair is one code point once decoded

Path = tuple[str | int, ...]


class Refused:
    """Stands in for what cannot be stored where the walk meets it (a number
    ``ordinaut.api.strict``'s JSON hooks refused, a key), so the problem is named in order."""

    __slots__ = ("message", "kind")

    def __init__(self, message: str, kind: str) -> None:
        self.message = message
        self.kind = kind


NOT_FINITE = "number_not_finite"
INT_TOO_BIG = "int_too_big"
INT_TOO_BIG_MESSAGE = f"integer outside {INT_MIN}..{INT_MAX}; send it as a string"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    found = _BAD_TEXT.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "text may not contain NUL (\\u0000)"
    return "text may not contain a lone UTF-16 surrogate"


def label(key: str) -> str:
    """A key as part of a field name, NUL and lone surrogates escaped (``a\\u0000b``) so an
    error body naming it can be written."""
    return _BAD_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", key)


def _number_problem(value: int | float) -> tuple[str, str] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else ("number is not finite", NOT_FINITE)
    return None if INT_MIN <= value <= INT_MAX else (INT_TOO_BIG_MESSAGE, INT_TOO_BIG)


def problems(value: Any, root: Path, *, max_nodes: int | None = None) -> list[dict[str, Any]]:
    """Every part of ``value`` that would not be stored as given, in document order, at most
    ``MAX_PROBLEMS``, as ``{"loc", "msg", "type"}`` (FastAPI's validation error shape); only
    the first ``max_nodes`` values are looked at when given."""
    found: list[dict[str, Any]] = []
    stack: list[tuple[Path, Any]] = [(root, value)]
    budget = max_nodes if max_nodes is not None else -1
    while stack and len(found) < MAX_PROBLEMS and budget != 0:
        budget -= 1
        path, item = stack.pop()
        if isinstance(item, str):
            if (message := text_problem(item)) is not None:
                found.append({"loc": path, "msg": message, "type": "string_unstorable"})
        elif isinstance(item, int | float):
            if (problem := _number_problem(item)) is not None:
                found.append({"loc": path, "msg": problem[0], "type": problem[1]})
        elif isinstance(item, Refused):
            found.append({"loc": path, "msg": item.message, "type": item.kind})
        elif isinstance(item, dict):
            children: list[tuple[Path, Any]] = []
            for key, child in item.items():
                name = label(key) if isinstance(key, str) else str(key)
                if isinstance(key, str) and (message := text_problem(key)) is not None:
                    children.append(((*path, name), Refused(f"key: {message}", "key")))
                children.append(((*path, name), child))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend(((*path, i), child) for i, child in reversed(list(enumerate(item))))
    return found[:MAX_PROBLEMS]


def field_name(loc: Path) -> str:
    """``("payload", "items", 0)`` as ``payload.items.0``, as the API names fields."""
    return ".".join(str(part) for part in loc)
