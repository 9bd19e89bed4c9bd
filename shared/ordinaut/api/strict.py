"""Request input is stored as sent or refused: strict JSON bodies, no NUL or lone surrogates.

Python's ``json`` (FastAPI's default) reads ``NaN``, ``Infinity`` and ``1e999999`` as floats
that are stored as ``null``, integers of any size that cannot be stored as sent, and lone
UTF-16 surrogates (``"\\ud800"``) that no UTF-8 encoder takes; ``\\u0000`` is valid JSON that
PostgreSQL's text and jsonb refuse. Each is a 422 here naming the field (``body.payload.params.x``,
``query.topic``, ``path.name``), before any route code runs, for every route:

* ``JSONRoute`` is the route class of every router: it checks path parameters, query
  parameters and headers, and gives the route a ``StrictRequest``;
* ``StrictRequest.json`` parses the body with :func:`loads`: orjson, which refuses the
  constants, overflow and lone surrogates by itself, then two byte scans (``\\u0000``, and
  runs of 19+ digits that could be integers orjson rounds to floats). Only a body one of
  them flags is parsed a second time, by ``json`` with hooks that mark each offending value,
  to name the fields.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from ordinaut.errors import ValidationFailed
from ordinaut.storable import (
    INT_MAX,
    INT_MIN,
    INT_TOO_BIG,
    INT_TOO_BIG_MESSAGE,
    MAX_PROBLEMS,
    NOT_FINITE,
    Refused,
    label,
    problems,
    text_problem,
)

# The instants schedules are computed over (RRULE date-times are held to the same years).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_INT_DIGITS = len(str(INT_MAX))

# Digits as "0", other bytes as " ": 19 digits in a row could be an integer beyond i64/u64.
# (translate and a substring search run in C: several times faster than a regex here.)
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGITS = b"0" * 19
_NUL_ESCAPE = b"\\u0000"


def _constant(name: str) -> Refused:
    return Refused(f"{name} is not a JSON number; send a finite number", NOT_FINITE)


def _float(text: str) -> float | Refused:
    value = float(text)
    return value if math.isfinite(value) else Refused("number overflows a 64-bit float", NOT_FINITE)


def _int(text: str) -> int | Refused:
    # Length first: int() refuses more than 4300 digits with a ValueError of its own.
    if len(text.lstrip("-")) <= _INT_DIGITS:
        value = int(text)
        if INT_MIN <= value <= INT_MAX:
            return value
    return Refused(INT_TOO_BIG_MESSAGE, INT_TOO_BIG)


class UnstorableJSON(HTTPException):
    """A body with values that would not be stored as sent; answered as a 422 listing them.

    An ``HTTPException`` because FastAPI lets only those out of its body parsing unchanged
    (any other exception becomes a 400 without details); ``errors.install`` answers it.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(status_code=422)
        self.errors = errors


def loads(body: bytes) -> Any:
    """The JSON value of a request body, exactly as sent.

    Raises ``json.JSONDecodeError`` when the body is not JSON (400 ``invalid_json``) and
    ``UnstorableJSON`` naming each NaN, infinite or overflowing number, integer beyond 64
    bits, NUL and lone surrogate (422).
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _loads_checked(body, exc)
    if _NUL_ESCAPE in body or _LONG_DIGITS in body.translate(_DIGITS):
        return _loads_checked(body, None)
    return value


def _loads_checked(body: bytes, fast_error: orjson.JSONDecodeError | None) -> Any:
    """The slow path: ``json`` with hooks, then a walk naming each offending field. Also reads
    what only ``json`` accepts (a byte-order mark, UTF-16 and UTF-32 bodies)."""
    try:
        value = json.loads(body, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        if fast_error is not None:
            raise fast_error from None
        raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None
    found = problems(value, ("body",))
    if found:
        raise UnstorableJSON(found)
    return value


class StrictRequest(Request):
    """A request whose ``json()`` is :func:`loads` (parsed once, then cached)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


def _has_bad_query(query: bytes) -> bool:
    return b"%00" in query or b"\x00" in query


def param_problems(request: Request) -> list[dict[str, Any]]:
    """NUL and lone surrogates in path parameters, query parameters and header values."""
    scope = request.scope
    found: list[dict[str, Any]] = []
    if text_problem(scope["path"]) is not None:
        for name, value in request.path_params.items():
            if isinstance(value, str) and (message := text_problem(value)):
                found.append({"loc": ("path", name), "msg": message, "type": "string_unstorable"})
    if _has_bad_query(scope.get("query_string", b"")):
        for name, value in request.query_params.multi_items():
            message = text_problem(name) or text_problem(value)
            if message is not None:
                loc = ("query", label(name))
                found.append({"loc": loc, "msg": message, "type": "string_unstorable"})
    for name, value in scope.get("headers", ()):
        if b"\x00" in value:
            loc = ("header", name.decode("latin-1"))
            found.append({"loc": loc, "msg": "NUL in a header value", "type": "string_unstorable"})
    return found[:MAX_PROBLEMS]


class JSONRoute(APIRoute):
    """The route class of every router (``APIRouter(route_class=JSONRoute)``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        # Every path this route's pattern matches starts with the literal text before its
        # first parameter (``/tasks/`` for ``/tasks/{task_id}``).
        self.literal_prefix = self.path_format.split("{", 1)[0]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """The router asks each route in turn; a path that does not start with this route's
        literal prefix is ruled out by one string comparison instead of the framework's
        four calls and a regular expression. With a ``root_path`` (a mounted app) the
        framework strips it first, so the full check runs."""
        if not scope.get("root_path") and not scope["path"].startswith(self.literal_prefix):
            return Match.NONE, {}
        return super().matches(scope)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            found = param_problems(request)
            if found:
                raise RequestValidationError(found)
            return await handler(StrictRequest(request.scope, request.receive))

        return strict_handler


def utc_instant(name: str, value: datetime | None, *, bounded: bool = False) -> datetime | None:
    """``value`` in UTC, or a 422 naming ``name`` when it has no UTC offset or no UTC time
    (``0001-01-01T00:00+05:00``); ``bounded``: also outside 1900..9000 (a window a schedule
    is computed from, where the zone arithmetic around it must not leave datetime's range)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(
            f"{name} needs a UTC offset", [{"field": name, "message": "add Z or an offset"}]
        )
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or (bounded and not EARLIEST <= instant < LATEST):
        message = "must lie between 1900-01-01 and 9000-01-01 UTC" if bounded else "out of range"
        raise ValidationFailed(f"{name} {message}", [{"field": name, "message": message}])
    return instant
