"""Pure ASGI middleware (no BaseHTTPMiddleware: no extra task or body copy per request).

Outermost first:

* ``RequestContextMiddleware``: trailing-slash tolerance (except ``GET /tasks/``, an empty id),
  ``X-Request-ID``, log context,
  metrics by route template, and the last word on unexpected exceptions (500, or 503 when a
  backing service is unreachable) so those responses keep the request id and are counted.
* ``RateLimitMiddleware``: a token bucket per agent (or per client address until a token
  authenticated), shared through Redis when configured.
* ``BodyLimitMiddleware``: body size (declared and streamed) and JSON nesting depth, checked
  before anything parses the body.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import re
import time
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordinaut import errors as domain
from ordinaut import logs, tracing
from ordinaut.api.errors import is_unavailable, new_request_id, send_error
from ordinaut.config import Settings
from ordinaut.metrics import HTTP_LATENCY, HTTP_REQUESTS, RATE_LIMIT_FALLBACKS

log = logging.getLogger("ordinaut.api")
access_log = logging.getLogger("ordinaut.api.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
UNLIMITED_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})
# Scope key of the requests the app sends to itself (a ``/mcp`` tool call's REST requests,
# api/routes/mcp.py): the ``/mcp`` request that made them was charged already. A scope key,
# not a header, so no client can set it.
IN_PROCESS = "ordinaut.in_process"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/tasks/{task_id}``), never the concrete path."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _reads_an_empty_id(scope: Scope, path: str) -> bool:
    """``GET /tasks/``: the end of ``GET /tasks/$ID`` with ``$ID`` empty far more often than
    a list asked for with a slash; it stays unmatched and its 404 names the missing id."""
    if scope["method"] not in ("GET", "HEAD"):
        return False
    app = scope.get("app")
    collections = getattr(getattr(app, "state", None), "item_collections", None)
    if collections is None and app is not None and hasattr(app, "openapi"):
        paths = app.openapi().get("paths", {})
        collections = frozenset(
            parent
            for template in paths
            if template.endswith("}") and (parent := template.rsplit("/", 1)[0]) in paths
        )
        app.state.item_collections = collections
    return path.rstrip("/") in (collections or ())


# (method, route template, status) -> its request counter and latency histogram children.
# ``labels()`` checks and converts its values under a lock on every call; the children never
# change, and the keys are bounded (methods, route templates and statuses are few).
_counted: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _children(method: str, route: str, status: int) -> tuple[Any, Any]:
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/") and not _reads_an_empty_id(scope, path):
            scope["path"] = path.rstrip("/") or "/"
            raw = scope.get("raw_path")
            if raw:
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        incoming = _header(scope, b"x-request-id")
        text = incoming.decode("latin-1") if incoming else ""
        rid = text if _REQUEST_ID.fullmatch(text) else new_request_id()
        _state(scope)["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        token = logs.bind(request_id=rid)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), rid_header]}
            await send(message)

        begun = time.perf_counter()
        parent = _header(scope, b"traceparent")
        span, span_token = tracing.start_server_span(
            scope["method"] if scope["method"] in _METHODS else "OTHER",
            parent.decode("latin-1") if parent else None,
        )
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                log.exception("error after the response started")
                raise
            if isinstance(exc, domain.OrdinautError):
                await send_error(
                    send_with_id, exc.status, exc.code, exc.message, exc.details, request_id=rid
                )
            elif is_unavailable(exc):
                log.warning("backing service unavailable: %s", type(exc).__name__)
                await send_error(
                    send_with_id,
                    503,
                    "unavailable",
                    "a backing service is unavailable; retry shortly",
                    request_id=rid,
                    headers=[(b"retry-after", b"1")],
                )
            else:
                log.exception("unhandled error")
                await send_error(
                    send_with_id,
                    500,
                    "internal_error",
                    "internal error; it has been logged with this request id",
                    request_id=rid,
                )
        finally:
            elapsed = time.perf_counter() - begun
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = route_template(scope)
            counted = _counted.get((method, route, status))
            if counted is None:
                counted = _counted[(method, route, status)] = _children(method, route, status)
            counted[0].inc()
            counted[1].observe(elapsed)
            tracing.end_server_span(span, span_token, method, route, status)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %s",
                    method,
                    route,
                    status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
                )
            logs.reset(token)


class TokenBuckets:
    """Token buckets keyed by caller; bounded memory (least recently seen keys are dropped)."""

    def __init__(self, per_minute: int, *, max_keys: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """Take one token; returns 0 when allowed, else seconds until one is available."""
        tokens, last = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


def client_address(scope: Scope) -> str:
    """The peer's address as the server saw it (``X-Forwarded-For`` is not trusted)."""
    client = scope.get("client")
    return "ip:" + (str(client[0]) if client else "unknown")


def bearer_digest(scope: Scope) -> str | None:
    """A digest of the bearer token, if the request carries one (never the token itself)."""
    authorization = _header(scope, b"authorization")
    if authorization and authorization[:7].lower() == b"bearer ":
        return hashlib.blake2b(authorization[7:].strip(), digest_size=12).hexdigest()
    return None


# One token bucket per key in Redis, as a hash {t: tokens, at: seconds}; returns the seconds to
# wait as a string (a Lua number would come back truncated to an integer).
TAKE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(v[1]) or capacity
local at = tonumber(v[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return tostring(wait)
"""
REDIS_TIMEOUT_S = 0.5
REDIS_RETRY_S = 5.0  # after a failure, count in process this long before trying Redis again
WARN_EVERY_S = 60.0


RATE_LIMIT_STORES = ("memory", "redis")


def check_rate_limit_store(settings: Settings) -> None:
    """A misspelt store must stop the API at start, not leave every process counting alone."""
    if settings.rate_limit_store not in RATE_LIMIT_STORES:
        raise ValueError(
            f"ORDINAUT_RATE_LIMIT_STORE must be memory or redis, not {settings.rate_limit_store!r}"
        )


class RateLimitMiddleware:
    """Token buckets: ``rate_limit_per_minute`` per caller, ``auth_rate_limit_per_minute`` per
    client address on ``/agents/auth/*``; 429 with Retry-After.

    A caller is its agent once one of its tokens authenticated in this process; until then,
    without a token or with a token that did not authenticate, it is its client address, so
    rotating made-up tokens cannot dodge the limit. With ``rate_limit_store = "redis"`` the
    buckets live in Redis and every API process shares them; while Redis is unreachable each
    process counts on its own (logged, ``ordinaut_rate_limit_fallbacks_total``), and a request
    is never refused because Redis is down.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit = settings.rate_limit_per_minute
        self.auth_limit = settings.auth_rate_limit_per_minute
        self.buckets = TokenBuckets(max(1, self.limit))
        self.auth_buckets = TokenBuckets(max(1, self.auth_limit))
        self.shared = settings.rate_limit_store == "redis"  # checked by create_app at start
        self.prefix = settings.rate_limit_prefix
        # token digest -> its agent, learned when the token authenticated (bounded, LRU)
        self.known: OrderedDict[str, str] = OrderedDict()
        self._redis_down_until = float("-inf")
        self._warned_at = float("-inf")
        self._script: Any = None  # the bucket script, sent once and then called by its SHA

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS or scope.get(IN_PROCESS):
            await self.app(scope, receive, send)
            return
        address = client_address(scope)
        digest = bearer_digest(scope)
        agent = None
        if digest is not None and (agent := self.known.get(digest)) is not None:
            self.known.move_to_end(digest)  # least recently seen tokens are forgotten first
        if self.auth_limit > 0 and scope["path"].startswith("/agents/auth/"):
            wait = await self._take(scope, "auth", address, self.auth_limit, self.auth_buckets)
            if wait > 0:
                await self._refuse(scope, send, wait, "auth_rate_limit_per_minute", self.auth_limit)
                return
        if self.limit > 0:
            key = f"a:{agent}" if agent else address
            wait = await self._take(scope, "req", key, self.limit, self.buckets)
            if wait > 0:
                await self._refuse(scope, send, wait, "rate_limit_per_minute", self.limit)
                return
        if not digest:
            await self.app(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if agent is None:
            await self._learn(scope, digest)
        elif status == 401:
            # revoked or expired since: its requests count against the address again, so a
            # dead token cannot spend its former agent's budget
            self.known.pop(digest, None)

    async def _learn(self, scope: Scope, digest: str) -> None:
        """Remember the agent of a token that authenticated; this first request counts
        toward the agent's budget too (it was charged to the address before we knew)."""
        principal = _state(scope).get("principal")
        agent_id = getattr(principal, "agent_id", None)
        if agent_id is None:
            return
        self.known[digest] = str(agent_id)
        while len(self.known) > self.buckets.max_keys:
            self.known.popitem(last=False)
        if self.limit > 0:
            await self._take(scope, "req", f"a:{agent_id}", self.limit, self.buckets)

    async def _take(
        self, scope: Scope, name: str, key: str, per_minute: int, local: TokenBuckets
    ) -> float:
        if self.shared and time.monotonic() >= self._redis_down_until:
            try:
                deps = scope["app"].state.deps
                redis = await deps.redis()
                if self._script is None:
                    self._script = redis.register_script(TAKE_SCRIPT)
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    raw = await self._script(
                        keys=[f"{self.prefix}:{name}:{key}"],
                        args=[per_minute, per_minute / 60.0, time.time()],
                        client=redis,
                    )
                return float(raw)
            except Exception as exc:
                # never a 500 or a hang because the limiter's store is gone: count in process
                self._redis_down_until = time.monotonic() + REDIS_RETRY_S
                RATE_LIMIT_FALLBACKS.inc()
                if time.monotonic() - self._warned_at >= WARN_EVERY_S:
                    self._warned_at = time.monotonic()
                    log.warning(
                        "rate limiter cannot reach Redis; counting in this process",
                        extra={"error": repr(exc)},
                    )
        elif self.shared:
            RATE_LIMIT_FALLBACKS.inc()
        return local.take(key, time.monotonic())

    async def _refuse(self, scope: Scope, send: Send, wait: float, limit: str, value: int) -> None:
        retry_after = max(1, math.ceil(wait))
        await send_error(
            send,
            429,
            domain.RateLimited.code,
            f"rate limit of {value} requests per minute exceeded ({limit})",
            {"limit": limit, "max": value, "retry_after_s": retry_after},
            request_id=_state(scope).get("request_id") or new_request_id(),
            headers=[(b"retry-after", str(retry_after).encode())],
        )


_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_DELTA = [0] * 256
_DELTA[ord("[")] = _DELTA[ord("{")] = 1
_DELTA[ord("]")] = _DELTA[ord("}")] = -1


def json_depth(body: bytes, limit: int) -> int:
    """Maximum nesting depth of arrays/objects in ``body`` (strings ignored), in linear time
    without recursion; returns early with a value <= ``limit`` when it cannot exceed it."""
    opened = body.count(b"[") + body.count(b"{")
    if opened <= limit:
        return opened
    structure = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_DELTA.__getitem__, structure)), default=0)


class BodyLimitMiddleware:
    """Reads the body (bounded by ``max_body_bytes``), checks JSON depth, then replays it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_bytes = settings.max_body_bytes
        self.max_depth = settings.max_json_depth

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await send_error(
            send,
            413,
            domain.PayloadTooLarge.code,
            f"request body exceeds {self.max_bytes} bytes (max_body_bytes)",
            {"limit": "max_body_bytes", "max": self.max_bytes},
            request_id=_state(scope).get("request_id") or new_request_id(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_depth(body, self.max_depth) > self.max_depth:
            await send_error(
                send,
                422,
                domain.LimitExceeded.code,
                f"JSON nested deeper than {self.max_depth} levels (max_json_depth)",
                {"limit": "max_json_depth", "max": self.max_depth},
                request_id=_state(scope).get("request_id") or new_request_id(),
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
