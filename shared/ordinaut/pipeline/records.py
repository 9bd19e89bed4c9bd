"""Step records: make tool values JSON-able, mask secrets, and keep them within size caps.

Everything here is bounded: walks count nodes and stop, sizes are measured with a lazy
encoder that stops at the cap, so a shared-reference structure that would expand
exponentially when serialized costs at most the cap.
"""

from __future__ import annotations

import base64
import json
import math
import urllib.parse
from collections.abc import Iterable
from datetime import date, datetime, time
from typing import Any

import orjson

from ordinaut import storable

MASK = "***"
TRUNCATED_DEPTH = "<nested too deep>"
_MAX_DEPTH = 64
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


class TooBig(Exception):
    """A value has more nodes than the walk allows."""


def json_size(value: Any, cap: int) -> int:
    """Length of ``value`` as compact JSON, or any number above ``cap`` once it passes it."""
    try:
        # Fast path for plain JSON values (the common case on the hot path); anything orjson
        # refuses goes through the bounded lazy encoder below.
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        pass
    total = 0
    try:
        for chunk in _ENCODER.iterencode(value):
            # surrogatepass: a lone surrogate has a size too (whether it may be stored is
            # ``unstorable``'s question, not a size)
            total += (
                len(chunk.encode("utf-8", "surrogatepass")) if not chunk.isascii() else len(chunk)
            )
            if total > cap:
                return total
    except (ValueError, RecursionError):
        return cap + 1
    return total


def json_text(value: Any, cap: int) -> str:
    """Compact JSON of ``value``, cut after about ``cap`` characters."""
    parts: list[str] = []
    size = 0
    try:
        for chunk in _ENCODER.iterencode(value):
            parts.append(chunk)
            size += len(chunk)
            if size >= cap:
                break
    except (ValueError, RecursionError):
        parts.append("…")
    return "".join(parts)[:cap]


def to_jsonable(value: Any, *, max_nodes: int = 200_000) -> Any:
    """A JSON-able copy: tuples become lists, instants ISO strings, NaN null, the rest str.

    Raises ``TooBig`` past ``max_nodes`` nodes.
    """
    budget = [max_nodes]

    def walk(v: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise TooBig(f"more than {max_nodes} values")
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if depth >= _MAX_DEPTH:
            return TRUNCATED_DEPTH
        if isinstance(v, dict):
            return {str(k): walk(item, depth + 1) for k, item in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(item, depth + 1) for item in v]
        if isinstance(v, (set, frozenset)):
            return [walk(item, depth + 1) for item in sorted(v, key=repr)]
        if isinstance(v, (datetime, date, time)):
            return v.isoformat()
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(bytes(v)).decode("ascii")
        return str(v)

    return walk(value, 0)


def nesting_depth(value: Any, cap: int) -> int:
    """Nesting depth of lists and objects in ``value`` (a scalar is 0), or ``cap + 1`` once
    it passes ``cap``. Iterative and bounded by ``cap``, so any input is safe to measure."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        if depth > cap:
            return cap + 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def storage_problem(value: Any, *, max_depth: int, max_bytes: int, what: str) -> str | None:
    """Why PostgreSQL (jsonb) could not store ``value`` within the limits, or None.

    Checked where a value that will be stored is produced (an event a pipeline publishes),
    so a value that cannot be stored fails that step alone instead of the write that would
    also carry other runs' outcomes.
    """
    if nesting_depth(value, max_depth) > max_depth:
        return f"{what} nested deeper than max_json_depth ({max_depth})"
    # before the size: a lone surrogate has no UTF-8 size. Every value takes at least a byte,
    # so a walk of max_bytes values sees all of any value that fits.
    problem = unstorable(value, what, max_nodes=max_bytes)
    if problem is not None:
        return problem
    size = json_size(value, max_bytes)
    if size > max_bytes:
        return f"{what} larger than max_payload_bytes ({max_bytes} bytes)"
    return None


def unstorable(value: Any, root: str, *, max_nodes: int | None = None) -> str | None:
    """The first part of ``value`` PostgreSQL would not store as given (``ordinaut.storable``:
    NUL or a lone surrogate in text or a key, a non-finite number, an integer too wide), as
    ``path: why`` with the path starting at ``root``; None when all of it would be stored (or
    its first ``max_nodes`` values, when given)."""
    found = storable.problems(value, (root,), max_nodes=max_nodes)
    if not found:
        return None
    return f"{storable.field_name(found[0]['loc'])}: {found[0]['msg']}"


def mask_secrets(value: Any, secrets: Iterable[str]) -> Any:
    """Replace every occurrence of each secret value inside strings (and keys) with ``***``."""
    if isinstance(secrets, (list, tuple)) and not secrets:
        return value  # the common case: a run without secrets
    needles = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not needles:
        return value

    def mask_text(text: str) -> str:
        for needle in needles:
            if needle in text:
                text = text.replace(needle, MASK)
        return text

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return mask_text(v)
        if isinstance(v, dict):
            return {mask_text(str(k)): walk(item) for k, item in v.items()}
        if isinstance(v, list):
            return [walk(item) for item in v]
        return v

    return walk(value)


# Encoded forms of a secret shorter than this are not masked: too many innocent strings hold
# a short run of base64 or URL characters.
_MIN_ENCODED = 6


def encodings(secret: str) -> set[str]:
    """Forms ``secret`` takes on the way out: URL-encoded (path, query and form styles) and
    base64 (standard and URL-safe). For base64 also the characters that encode it inside a
    longer value (``user:secret`` in a Basic header) at each of the three byte alignments."""
    forms = {
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
    }
    raw = secret.encode("utf-8")
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + raw).decode("ascii").rstrip("=")
            # drop the characters shared with the bytes before and after the secret
            start = -(-offset * 4 // 3)
            end = ((offset + len(raw)) * 4) // 3
            core = text[start:end]
            if offset == 0:
                forms.add(text)
                forms.add(encode(raw).decode("ascii"))
            forms.add(core)
    return {f for f in forms if len(f) >= _MIN_ENCODED or f == secret}


def with_encodings(secrets: Iterable[str]) -> list[str]:
    """``secrets`` and their encoded forms, for ``mask_secrets``."""
    out: set[str] = set()
    for secret in secrets:
        if secret:
            out.add(secret)
            out |= encodings(secret)
    return sorted(out, key=len, reverse=True)


def cap_value(value: Any, max_bytes: int) -> Any:
    """``value`` itself when its JSON fits ``max_bytes``, else a marker with a preview."""
    size = json_size(value, max_bytes)
    if size <= max_bytes:
        return value
    preview_len = max(0, min(max_bytes // 4, 4096))
    return {
        "truncated": True,
        "size_bytes_over": max_bytes,
        "preview": json_text(value, preview_len),
    }


def record_value(value: Any, secrets: Iterable[str], max_bytes: int) -> Any:
    """What a step record stores: a JSON-able copy, secrets masked, within ``max_bytes``."""
    try:
        plain = to_jsonable(value)
    except TooBig:
        return {"truncated": True, "size_bytes_over": max_bytes, "preview": ""}
    return cap_value(mask_secrets(plain, secrets), max_bytes)


def clip_message(message: str, secrets: Iterable[str], max_length: int) -> str:
    """An error message fit for a record: secrets masked, length bounded."""
    text = mask_secrets(message, secrets)
    if len(text) > max_length:
        text = text[: max_length - 1] + "…"
    return str(text)
