"""What a request needs: settings, the clock, the pool, Redis, and who is calling.

``Deps`` lives on ``app.state.deps``. Its pool and Redis client are created lazily on first use
and kept for the life of the process, so a Lambda container reuses them across warm
invocations (Mangum runs with ``lifespan="off"``); when the lifespan does run, its shutdown
closes them. A pool or client handed to ``create_app`` is used as is and never closed here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar
from uuid import UUID

import asyncpg
from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ordinaut import auth, cloud, logs
from ordinaut.api.errors import new_request_id
from ordinaut.api.schemas import Page
from ordinaut.clock import Clock, DatabaseClock
from ordinaut.config import Settings
from ordinaut.errors import Forbidden, Unauthorized, Unavailable
from ordinaut.store import agents, db

if TYPE_CHECKING:  # imported on first use: a request that needs no Redis never loads it
    from redis.asyncio import Redis

POOL_ACQUIRE_TIMEOUT_S = 2.5
POOL_RETRY_AFTER_FAILURE_S = 1.0
CLOCK_RESYNC_S = 60.0
IDLE_EXPIRE_S = 120.0
MAX_PAGE = 500
MAX_OFFSET = 1_000_000


async def _create_pool(settings: Settings) -> asyncpg.Pool:
    if not settings.database_url:
        raise Unavailable("ORDINAUT_DATABASE_URL is not set")
    return await db.create_pool(
        settings,
        min_size=1,
        max_size=max(1, settings.db_pool_max),
        acquire_timeout=POOL_ACQUIRE_TIMEOUT_S,
    )


def _create_redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise Unavailable("ORDINAUT_REDIS_URL is not set")
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    # One quick retry covers a connection that went stale across a Redis restart; anything
    # longer would turn a Redis outage into slow requests instead of fast, buffered ones.
    client: Redis = Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=min(2.0, settings.db_connect_timeout_s),
        socket_timeout=5.0,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        health_check_interval=30,
    )
    return client


@dataclass(eq=False)
class Deps:
    """Per-application dependencies. ``pool()`` and ``redis()`` are lazy and loop-aware."""

    settings: Settings
    clock: Clock
    external_pool: asyncpg.Pool | None = None
    external_redis: Redis | None = None
    _pool: asyncpg.Pool | None = field(default=None, init=False, repr=False)
    _pool_loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _pool_lock: asyncio.Lock | None = field(default=None, init=False, repr=False)
    _lock_loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _pool_failed_at: float = field(default=float("-inf"), init=False, repr=False)
    _clock_synced_at: float = field(default=float("-inf"), init=False, repr=False)
    _last_used: float = field(default_factory=time.monotonic, init=False, repr=False)
    _redis: Redis | None = field(default=None, init=False, repr=False)
    _redis_loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    # Lambda: wakes a worker after a request queued work due now (None without a work queue)
    waker: cloud.Waker | None = None

    async def wake_workers(self) -> None:
        """After the commit of a request that queued work due now; never raises."""
        if self.waker is not None:
            await self.waker.wake()

    async def pool(self) -> asyncpg.Pool:
        """The asyncpg pool (created on first use; Unavailable fast while the DB is down)."""
        pool = self.external_pool
        idle = time.monotonic() - self._last_used
        self._last_used = time.monotonic()
        if pool is None:
            loop = asyncio.get_running_loop()
            pool = self._pool
            if pool is None or self._pool_loop is not loop or pool.is_closing():
                pool = await self._new_pool(loop)
            elif idle > IDLE_EXPIRE_S:
                # After a long quiet spell (a frozen Lambda container, RDS Proxy's idle
                # timeout) pooled sockets may be dead: reconnect instead of answering 503.
                await pool.expire_connections()
        if isinstance(self.clock, DatabaseClock) and (
            time.monotonic() - self._clock_synced_at > CLOCK_RESYNC_S or idle > IDLE_EXPIRE_S
        ):
            await db.sync_clock(pool, self.clock)
            self._clock_synced_at = time.monotonic()
        return pool

    async def _new_pool(self, loop: asyncio.AbstractEventLoop) -> asyncpg.Pool:
        if self._pool_lock is None or self._lock_loop is not loop:
            self._pool_lock = asyncio.Lock()
            self._lock_loop = loop
        async with self._pool_lock:
            current = self._pool
            if current is not None and self._pool_loop is loop and not current.is_closing():
                return current
            if time.monotonic() - self._pool_failed_at < POOL_RETRY_AFTER_FAILURE_S:
                raise Unavailable("database unavailable", {"retry_after_s": 1})
            if current is not None:
                # Left over from an event loop that is gone (a previous Lambda invocation):
                # its connections cannot be closed gracefully from this loop.
                current.terminate()
                self._pool = None
            try:
                self._pool = await _create_pool(self.settings)
            except Exception:
                self._pool_failed_at = time.monotonic()
                raise
            self._pool_loop = loop
            return self._pool

    async def redis(self) -> Redis:
        """The Redis client (created on first use; connects lazily)."""
        if self.external_redis is not None:
            return self.external_redis
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            self._redis = _create_redis(self.settings)
            self._redis_loop = loop
        return self._redis

    def use_settings(self, settings: Settings) -> None:
        """New settings (a Lambda container whose secrets rotated): the pool and the Redis
        client it created are dropped and made again with them on next use."""
        self.settings = settings
        pool, self._pool = self._pool, None
        self._redis = None  # its connections close when collected
        if pool is not None:
            pool.terminate()

    async def close(self) -> None:
        """Close what this object created (never what was handed in)."""
        pool, self._pool = self._pool, None
        client, self._redis = self._redis, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=5.0)
            except (TimeoutError, RuntimeError):
                pool.terminate()
        if client is not None:
            await client.aclose()


@dataclass(frozen=True)
class Principal:
    """The authenticated agent of a request. ``admin`` implies every scope."""

    agent_id: UUID
    scopes: frozenset[str]
    is_admin: bool

    def has(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes


# FastAPI runs a plain ``def`` dependency in its thread pool: a thread hop per dependency per
# request. The dependencies are ``async def`` so they run inline on the event loop; the plain
# functions beside them (``deps_of``, ``id_of``, ``now_of``) are for code that is not one.


def deps_of(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


async def get_deps(request: Request) -> Deps:
    """Dependency: the app's Deps."""
    return deps_of(request)


def id_of(request: Request) -> str:
    """The request id the middleware assigned (echoed as ``X-Request-ID``)."""
    rid = getattr(request.state, "request_id", None)
    if not isinstance(rid, str):
        rid = new_request_id()
        request.state.request_id = rid
    return rid


async def request_id(request: Request) -> str:
    """Dependency: the request id (``id_of``)."""
    return id_of(request)


def now_of(request: Request) -> datetime:
    """The request's one reading of the clock (read once, passed into SQL)."""
    now = getattr(request.state, "now", None)
    if not isinstance(now, datetime):
        now = deps_of(request).clock.now()
        request.state.now = now
    return now


async def request_now(request: Request) -> datetime:
    """Dependency: the request's one reading of the clock (``now_of``)."""
    return now_of(request)


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <access_token>`")
MISSING_TOKEN = "authentication required: send Authorization: Bearer <access_token>"


def principal_of(grant: agents.Grant) -> Principal:
    """The caller a live token's grant makes (the one place the admin scope is read)."""
    return Principal(
        agent_id=grant.agent_id, scopes=grant.scopes, is_admin=auth.ADMIN in grant.scopes
    )


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """Check the bearer token against ``agent_tokens`` (every request; cached per request)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    if credentials is None or not credentials.credentials:
        raise Unauthorized(MISSING_TOKEN)
    return await _verified(request, credentials.credentials, await deps_of(request).pool())


async def _verified(request: Request, token: str, db: asyncpg.Pool) -> Principal:
    """The caller ``token`` names, checked on ``db`` at the request's instant; kept on the
    request so a second dependency asking again costs nothing."""
    grant = await agents.authenticate(db, token, now_of(request))
    if grant is None:
        raise auth.InvalidToken(agents.BAD_TOKEN)
    return _admitted(request, grant)


def _admitted(request: Request, grant: agents.Grant) -> Principal:
    """The caller a live token's grant makes, kept on the request (for the rate limiter, a
    second dependency asking again, and the log lines of the request)."""
    principal = principal_of(grant)
    request.state.principal = principal
    logs.bind(agent_id=str(principal.agent_id))
    return principal


def _demand(principal: Principal, scope: str | None) -> Principal:
    """``principal`` when it holds ``scope`` (None: any); 403 naming the scope otherwise."""
    if scope is not None and not principal.has(scope):
        raise Forbidden(f"this route needs the {scope!r} scope", {"required_scope": scope})
    return principal


def require(scope: str | None) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the caller's Principal: 401 without a live access token,
    403 when it lacks ``scope`` (None: any authenticated agent)."""
    if scope is not None and scope not in auth.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        return _demand(await authenticate(request, credentials), scope)

    dependency.__name__ = f"require_{(scope or 'auth').replace(':', '_')}"
    return dependency


def bearer_token(request: Request) -> str:
    """The credentials of ``Authorization: Bearer <token>`` ("" without them), read as
    ``HTTPBearer(auto_error=False)`` reads them."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if token and scheme.lower() == "bearer" else ""


# The security requirement a ``require_bearer`` route declares with ``openapi_extra``: that
# dependency reads the header itself (a ``Security(HTTPBearer)`` sub-dependency cost ~12 µs
# of FastAPI's dependency resolution per request), so the operation names the scheme here.
BEARER_SECURITY: dict[str, object] = {"security": [{"HTTPBearer": []}]}


@dataclass(frozen=True, slots=True)
class Bearer:
    """A request's access token, to be checked by the route's own statement: the route
    selects ``agents.GRANT_COLUMNS`` beside what it reads (one round trip instead of two)
    and hands the grant that came back to ``admit``, before using anything it read. The
    token is still checked against the database on every request, at the request's instant.
    Until then it waits on ``request.state.unverified_bearer``: an error answered before
    ``admit`` (the route's input refused by FastAPI or by the route itself) checks the token
    first (api/errors.py), so 401 and 403 keep precedence."""

    request: Request
    token: str
    scope: str
    deps: Deps
    now: datetime

    @property
    def digest(self) -> bytes:
        return auth.token_digest(self.token)

    def admit(self, grant: agents.Grant | None) -> Principal:
        """The caller, from the grant the route's statement returned: 401 when the token is
        not live, 403 when it lacks the route's scope."""
        self.request.state.unverified_bearer = None
        if grant is None:
            raise auth.InvalidToken(agents.BAD_TOKEN)
        return _demand(_admitted(self.request, grant), self.scope)

    async def verify(self) -> Principal:
        """Check the token by itself (one statement): for a request refused before its route
        ran, so a caller without a live token learns nothing about its input."""
        self.request.state.unverified_bearer = None
        grant = await agents.authenticate(await self.deps.pool(), self.token, self.now)
        return self.admit(grant)


def require_bearer(scope: str) -> Callable[..., Awaitable[Bearer]]:
    """Like ``require``, for a route that checks the token in the same statement as its read
    (``Bearer``): this dependency only refuses a missing or malformed token (401). The route
    declares ``openapi_extra=BEARER_SECURITY``."""
    if scope not in auth.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(request: Request) -> Bearer:
        token = bearer_token(request)
        if not token:
            raise Unauthorized(MISSING_TOKEN)
        if auth.token_kind(token) != "access":
            raise auth.InvalidToken(agents.BAD_TOKEN)
        bearer = Bearer(request, token, scope, deps_of(request), now_of(request))
        request.state.unverified_bearer = bearer
        return bearer

    dependency.__name__ = f"require_bearer_{scope.replace(':', '_')}"
    return dependency


T = TypeVar("T")


@dataclass(frozen=True)
class Paging:
    """A list route's ``limit`` and ``offset``; ``page`` wraps one page in the envelope."""

    limit: int
    offset: int

    def page(self, items: list[T], total: int) -> Page[T]:
        """The envelope (``schemas.Page``) for one page of ``total`` matching items."""
        return Page(
            items=items,
            total=total,
            limit=self.limit,
            offset=self.offset,
            has_more=self.offset + len(items) < total,
        )


async def paging(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
) -> Paging:
    """``limit`` (1..500, default 50) and ``offset`` query parameters."""
    return Paging(limit=limit, offset=offset)


DepsDep = Annotated[Deps, Depends(get_deps)]
Now = Annotated[datetime, Depends(request_now)]
RequestId = Annotated[str, Depends(request_id)]
PagingDep = Annotated[Paging, Depends(paging)]
