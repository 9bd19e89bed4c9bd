"""What a Lambda container keeps between invocations, and how each invocation runs in it.

A container serves one invocation at a time and is frozen in between. It keeps:

* one event loop: asyncpg connections belong to the loop that opened them, so ``asyncio.run``
  per invocation would throw the pool away every time;
* one small asyncpg pool, created on first use and checked at the start of every invocation by
  the clock sync (a container thawed after a long freeze may hold sockets that the server or
  RDS Proxy closed): a failed check, or a connection error during the work, replaces it;
* one ``DatabaseClock``, synced on every invocation (docs/guarantees.md, "One clock");
* a Redis client for the outbox relay;
* its settings, rebuilt at the start of every invocation (``refresh``): Secrets Manager values
  are cached for ORDINAUT_SECRETS_TTL_S, so a rotated credential reaches a warm container
  within that time, and at once when the database refuses the login it has.

Logs: in Lambda, the Powertools Logger's JSON handler sits on the root logger, so every line of
every ``ordinaut.*`` logger carries the Lambda context (``function_request_id``,
``cold_start``, ...) and Ordinaut's log context (``request_id``, ``run_id``, ...). Elsewhere
``ordinaut.logs.configure`` does what it does for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ordinaut import cloud, events, logs, tracing
from ordinaut.clock import DatabaseClock
from ordinaut.config import Settings
from ordinaut.store import db

if TYPE_CHECKING:  # redis is imported on first use: the API handler's cold start skips it
    from redis.asyncio import Redis

log = logging.getLogger("ordinaut.lambda")

T = TypeVar("T")
Handler = Callable[[Any, Any], Any]

# What a dead or unreachable database looks like to asyncpg: worth a new pool, not a bug.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


def relay_errors() -> tuple[type[Exception], ...]:
    """What a relay pass survives: Redis failing, or the database connection (RELAY_ERRORS)."""
    from redis.exceptions import RedisError

    return (RedisError, *CONNECTION_ERRORS)


def __getattr__(name: str) -> Any:
    if name == "RELAY_ERRORS":  # imported by the events function; built on first use
        return relay_errors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_NAMESPACE = "Ordinaut"
# Not "ordinaut": Powertools names its logger after the service, and that would be the parent
# of every ordinaut.* logger.
SERVICE = "ordinaut-lambda"


def in_lambda(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))


class _LogContext(logging.Filter):
    """Puts Ordinaut's log context (request_id, task_id, run_id, ...) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in logs.current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def configure_logging(settings: Settings, environ: Mapping[str, str]) -> Logger | None:
    """Powertools JSON logs on the root logger in Lambda (returns the Logger); elsewhere
    ``ordinaut.logs.configure`` (returns None)."""
    if not in_lambda(environ):
        logs.configure(settings.log_level, json_output=settings.log_json)
        return None
    level = settings.log_level.upper()
    logger = Logger(service=environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE, level=level)
    handler = logger.registered_handler
    if not any(isinstance(f, _LogContext) for f in handler.filters):
        handler.addFilter(_LogContext())
    root = logging.getLogger()
    for existing in list(root.handlers):
        # the runtime's plain-text handler: one JSON line per record is the point
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    logs.quiet_libraries()
    # Powertools' own logger would otherwise print its lines twice (its handler, then root's).
    logging.getLogger(logger.name).propagate = False
    return logger


def metrics() -> Metrics:
    """EMF metrics in POWERTOOLS_METRICS_NAMESPACE (default Ordinaut), dimension ``service``."""
    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE)


def count_now(name: str) -> None:
    """One EMF document with ``name`` = 1, printed at once (for a function without a metrics
    flush of its own per invocation, the API's)."""
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=namespace) as one:
        one.add_dimension(
            name="service", value=os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE
        )


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it is, with uvicorn[standard]): asyncpg round trips are cheaper."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class Container:
    """One Lambda container's settings, loop, pool, clock and Redis client."""

    def __init__(
        self,
        settings: Settings,
        logger: Logger | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.environ = environ  # where refresh() reads settings again (None: never)
        self._settings_listeners: list[Callable[[Settings], None]] = []
        self.clock = DatabaseClock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: asyncpg.Pool | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._redis: Redis | None = None
        self._redis_loop: asyncio.AbstractEventLoop | None = None
        # wakes a worker after this container queued work due now (events function)
        self.waker: cloud.Waker | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Container:
        """Settings (secrets fetched and cached) and logging: what a cold start does."""
        env = os.environ if environ is None else environ
        settings = cloud.settings_from_environment(env)
        container = cls(settings, configure_logging(settings, env), env)
        # OpenTelemetry, when OTEL_* names an exporter (off otherwise, as in every process)
        tracing.configure(env.get("POWERTOOLS_SERVICE_NAME") or SERVICE, env)
        return container

    def on_settings(self, listener: Callable[[Settings], None]) -> None:
        """Call ``listener`` with the new settings whenever ``refresh`` changes them."""
        self._settings_listeners.append(listener)

    def refresh(self) -> bool:
        """Settings again from the environment (a secret is fetched again once its TTL is
        over); a rotated credential replaces the pool and the Redis client. Returns True when
        the settings changed. Secrets Manager failing keeps the settings the container has."""
        if self.environ is None:
            return False
        try:
            settings = cloud.settings_from_environment(self.environ)
        except Exception as exc:
            log.warning(
                "settings not refreshed; keeping the current ones", extra={"error": repr(exc)}
            )
            return False
        if settings == self.settings:
            return False
        self.settings = settings
        self.discard_pool()
        self._redis = None  # its connections close when collected; the next use reconnects
        for listener in self._settings_listeners:
            listener(settings)
        log.info("settings changed (a secret rotated); reconnecting")
        return True

    # -- invocations ---------------------------------------------------------------------

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The container's loop, made current for this thread (Mangum looks it up)."""
        if self._loop is None or self._loop.is_closed():
            self._loop = _new_event_loop()
        asyncio.set_event_loop(self._loop)
        return self._loop

    @property
    def has_loop(self) -> bool:
        return self._loop is not None and not self._loop.is_closed()

    def close_loop(self) -> None:
        """Close the container's loop (tests; Lambda just freezes or ends the process)."""
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one invocation's coroutine on the container's loop."""
        return self.event_loop().run_until_complete(coro)

    def entry_point(self, fn: Handler) -> Handler:
        """Wrap a handler: the container's loop is current, the Lambda context is on every log
        line (Powertools) and the request id is Ordinaut's log ``request_id``."""
        inner = fn if self.logger is None else self.logger.inject_lambda_context(fn)

        def handler(event: Any, context: Any) -> Any:
            self.event_loop()
            self.refresh()
            token = logs.bind(request_id=getattr(context, "aws_request_id", None))
            try:
                return inner(event, context)
            finally:
                logs.reset(token)
                # the container is frozen once the handler returns: spans still batched
                # would wait for the next invocation, or be lost with the container
                tracing.flush()

        handler.__doc__ = fn.__doc__
        return handler

    # -- database ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[asyncpg.Pool]:
        """The pool, checked and the clock synced; a connection error inside discards it."""
        pool = await self._checked_pool()
        try:
            yield pool
        except CONNECTION_ERRORS:
            self.discard_pool()
            raise

    @property
    def pool(self) -> asyncpg.Pool | None:
        """The pool kept for the next invocation (None before the first or after a failure)."""
        return self._pool

    async def _checked_pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is not None and self._pool_loop is loop and not pool.is_closing():
            try:
                async with asyncio.timeout(max(1.0, self.settings.db_connect_timeout_s)):
                    await db.sync_clock(pool, self.clock)
                return pool
            except CONNECTION_ERRORS as exc:
                log.info("pooled connection lost; reconnecting", extra={"error": repr(exc)})
        self.discard_pool()
        try:
            pool = await db.create_pool(self.settings)
        except asyncpg.InvalidAuthorizationSpecificationError:
            # The password may have rotated since the secret was read: read it now, once.
            cloud.reset()
            if not self.refresh():
                raise
            pool = await db.create_pool(self.settings)
        self._pool, self._pool_loop = pool, loop
        await db.sync_clock(pool, self.clock)
        return pool

    def discard_pool(self) -> None:
        """Drop the pool without a goodbye: its sockets may be dead or on another loop."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()

    async def close(self) -> None:
        """Close the pool and the Redis client gracefully (tests, orderly shutdowns)."""
        pool, self._pool = self._pool, None
        client, self._redis = self._redis, None
        if pool is not None:
            await pool.close()
        if client is not None:
            await client.aclose()

    # -- outbox relay --------------------------------------------------------------------

    def redis(self) -> Redis | None:
        """The Redis client for this loop (None without ORDINAUT_REDIS_URL)."""
        if not self.settings.redis_url:
            return None
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            from redis.asyncio import Redis

            # health checks: a connection idle across a freeze is pinged before it is trusted
            self._redis = Redis.from_url(
                self.settings.redis_url,
                socket_connect_timeout=2.0,
                socket_timeout=5.0,
                health_check_interval=30,
            )
            self._redis_loop = loop
        return self._redis

    async def relay_outbox(self, pool: asyncpg.Pool, *, within_s: float) -> int:
        """Publish pending lifecycle events to Redis for at most ``within_s``; returns how
        many. A Redis outage only delays them (they stay in the outbox)."""
        client = self.redis()
        if client is None or within_s <= 0:
            return 0
        relayed = 0
        try:
            async with asyncio.timeout(within_s):
                while True:
                    n = await events.relay_once(
                        pool, client, now=self.clock.now(), maxlen=self.settings.stream_maxlen
                    )
                    if not n:
                        break
                    relayed += n
        except relay_errors() as exc:
            log.warning("outbox relay paused", extra={"error": repr(exc), "relayed": relayed})
        return relayed
