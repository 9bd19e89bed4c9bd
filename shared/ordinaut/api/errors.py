"""Every error leaves the API as ``{"error": {"code", "message", "details"}, "request_id"}``.

Domain errors (``ordinaut.errors``) carry their own status and code; framework errors (unknown
route, wrong method, invalid input, malformed JSON, values that would not be stored as sent:
``ordinaut.api.strict``) are mapped here; a database or Redis that cannot be reached is a 503
``unavailable``; anything else is a 500 (a bug), answered by the request middleware, which
also logs it.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import sys
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Send

from ordinaut import errors
from ordinaut.api.strict import UnstorableJSON
from ordinaut.config import Settings

MAX_VALIDATION_ERRORS = 50
MAX_MESSAGE_CHARS = 300
MAX_FIELD_CHARS = 200

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}
_HTTP_MESSAGES = {404: "no such route", 405: "method not allowed on this route"}

# Failures reaching PostgreSQL or Redis: the caller should retry later, nothing is wrong with
# the request. OSError covers refused / missing sockets and TimeoutError (pool acquire,
# connect and command timeouts).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    errors.Unavailable,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means a backing service could not be reached in time."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    # Redis's errors, when redis is loaded at all (it is imported on first use, so a process
    # that never reached Redis cannot be holding one of its errors).
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is not None and isinstance(
        exc, (redis_errors.ConnectionError, redis_errors.TimeoutError)
    ):
        return True
    # asyncpg reports a connection that died under it or a pool being closed this way.
    return isinstance(exc, asyncpg.InterfaceError) and "clos" in str(exc)


# A request id is unique, not secret: a random prefix per process and a counter (32 hex digits
# like a UUID's) cost no system call per request, where uuid4 reads os.urandom each time.
_ids = (uuid.uuid4().hex[:16], itertools.count(int.from_bytes(os.urandom(4), "big")))


def _new_id_prefix() -> None:  # a forked process (uvicorn --workers) numbers on its own
    global _ids
    _ids = (uuid.uuid4().hex[:16], itertools.count(int.from_bytes(os.urandom(4), "big")))


os.register_at_fork(after_in_child=_new_id_prefix)


def new_request_id() -> str:
    prefix, counter = _ids
    return f"{prefix}{next(counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


# Limits an operator sets, by the name errors give them in ``details[].limit``.
_SETTINGS = frozenset(f.name for f in dataclasses.fields(Settings))
_LIMIT_ALIASES = {"max_payload_bytes": "max_body_bytes"}  # a pipeline file is a request body


def limit_setting(limit: str) -> str | None:
    """The environment variable that sets ``limit`` (``max_steps`` -> ``ORDINAUT_MAX_STEPS``)."""
    name = _LIMIT_ALIASES.get(limit, limit)
    return f"ORDINAUT_{name.upper()}" if name in _SETTINGS else None


def _mention(text: str, limit: str, setting: str) -> str:
    if setting in text:
        return text
    named, count = re.subn(rf"\b{re.escape(limit)}\b", setting, text)
    return named if count else f"{text} ({setting})"


def name_settings(message: str, details: Any) -> tuple[str, Any]:
    """Every limit an error reports names the setting that raises it, in the message and as
    ``details[].setting``, so whoever reads it knows what an operator would change."""
    items = details if isinstance(details, list) else [details]
    settings: dict[str, str] = {}
    named = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("limit"), str):
            setting = limit_setting(item["limit"])
            if setting is not None:
                item = {**item, "setting": setting}
                if isinstance(item.get("message"), str):
                    item["message"] = _mention(item["message"], item["limit"], setting)
                settings.setdefault(item["limit"], setting)
        named.append(item)
    if not settings:
        return message, details
    for limit, setting in settings.items():
        message = _mention(message, limit, setting)
    return message, named if isinstance(details, list) else named[0]


def error_body(code: str, message: str, details: Any, request_id: str) -> bytes:
    message, details = name_settings(message, details)
    doc = {
        "error": {"code": code, "message": message, "details": details},
        "request_id": request_id,
    }
    return orjson.dumps(doc, default=str)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    *,
    request_id: str,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        error_body(code, message, details, request_id),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    *,
    request_id: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer from pure ASGI middleware, before (or instead of) the application."""
    body = error_body(code, message, details, request_id)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def request_id_of(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else new_request_id()


def domain_headers(exc: errors.OrdinautError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status in (429, 503) and isinstance(exc.details, dict):
        retry = exc.details.get("retry_after_s")
        if isinstance(retry, int | float):
            headers["Retry-After"] = str(max(1, int(retry + 0.999)))
    return headers


def validation_details(problems: Sequence[Any]) -> list[dict[str, Any]]:
    """Field path, message and type of each problem; the offending input is never echoed."""
    details = []
    for problem in problems[:MAX_VALIDATION_ERRORS]:
        loc = ".".join(str(part) for part in problem.get("loc", ()))
        details.append(
            {
                "field": loc[:MAX_FIELD_CHARS],
                "message": str(problem.get("msg", ""))[:MAX_MESSAGE_CHARS],
                "type": str(problem.get("type", "")),
            }
        )
    return details


async def _token_first(request: Request) -> Response | None:
    """A route that checks its token in its own statement (api/deps.py ``Bearer``) and is
    refused before that statement ran has not checked the token yet: check it now, so a
    caller without a live token or without the scope hears 401 / 403 as from every other
    route, never what was wrong with its input. None when there is nothing to check or the
    token is good."""
    bearer = getattr(request.state, "unverified_bearer", None)
    if bearer is None:
        return None
    try:
        await bearer.verify()  # clears the mark first: never checked twice
    except errors.OrdinautError as denied:
        return _domain_response(request, denied)
    return None


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.OrdinautError)
    refused = await _token_first(request)
    if refused is not None:
        return refused
    return _domain_response(request, exc)


def _domain_response(request: Request, exc: errors.OrdinautError) -> Response:
    return error_response(
        exc.status,
        exc.code,
        exc.message,
        exc.details,
        request_id=request_id_of(request),
        headers=domain_headers(exc) or None,
    )


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    refused = await _token_first(request)
    if refused is not None:
        return refused
    problems = list(exc.errors())
    broken = next((p for p in problems if p.get("type") == "json_invalid"), None)
    if broken is not None:
        loc = broken.get("loc", ())
        ctx = broken.get("ctx") or {}
        return error_response(
            400,
            "invalid_json",
            "request body is not valid JSON",
            {
                "position": loc[-1] if loc else None,
                "error": str(ctx.get("error", ""))[:MAX_MESSAGE_CHARS],
            },
            request_id=request_id_of(request),
        )
    return _invalid_input(request, problems)


def _invalid_input(request: Request, problems: Sequence[Any]) -> Response:
    details = validation_details(problems)
    first = details[0]["field"] if details else "request"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return error_response(
        422,
        "validation_error",
        f"invalid input at {first}{more}",
        details,
        request_id=request_id_of(request),
    )


async def _unstorable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnstorableJSON)
    return _invalid_input(request, exc.errors)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = _HTTP_MESSAGES.get(exc.status_code) or str(exc.detail)
    details = None
    path = request.url.path
    if exc.status_code == 404 and ("//" in path or (len(path) > 1 and path.endswith("/"))):
        message, details = _empty_segment(request)
    return error_response(
        exc.status_code,
        code,
        message,
        details,
        request_id=request_id_of(request),
        headers=dict(exc.headers) if exc.headers else None,
    )


def _empty_segment(request: Request) -> tuple[str, Any]:
    """A path with an empty segment (``/tasks//preview``, ``GET /tasks/``: a shell variable
    that was empty) names the route it was meant for and the id it lacks, instead of "no such
    route"."""
    path = request.url.path
    segments = path.split("/")
    # The routes as the OpenAPI document lists them (built once per app, then cached).
    for template in request.app.openapi().get("paths", {}):
        parts = template.split("/")
        if len(parts) != len(segments):
            continue
        missing = None
        for have, want in zip(segments, parts, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if have == "" and missing is None:
                    missing = want[1:-1]
            elif have != want:
                break
        else:
            if missing is not None:
                return (
                    f"{path} has an empty segment where {template} needs {missing} "
                    "(is the variable that holds it empty?)",
                    {"path": path[:MAX_FIELD_CHARS], "route": template, "missing": missing},
                )
    return f"no such route: {path[:MAX_FIELD_CHARS]} has an empty segment", None


def install(app: FastAPI) -> None:
    """Register the handlers. Unexpected exceptions are answered by the request middleware
    (outside Starlette's error middleware, so they keep the request id and metrics)."""
    app.add_exception_handler(errors.OrdinautError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(UnstorableJSON, _unstorable)  # before its base, HTTPException
    app.add_exception_handler(StarletteHTTPException, _http)
