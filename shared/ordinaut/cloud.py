"""Ordinaut on AWS Lambda: settings whose credentials live in Secrets Manager, worker wake-ups.

``settings_from_environment(os.environ)`` is ``load_settings`` plus the three secrets the
deployment names by ARN (``ORDINAUT_DATABASE_SECRET_ARN``, ``ORDINAUT_REDIS_SECRET_ARN``,
``ORDINAUT_SECRETS_KEY_ARN``). The database secret may be RDS's own managed master secret
(``{"username", "password"}``, rotated by RDS): the endpoint then comes from
``ORDINAUT_DATABASE_HOST`` / ``_PORT`` / ``_NAME`` / ``_SSLMODE``. Each secret is kept in this module for
``ORDINAUT_SECRETS_TTL_S`` (default 300 s) and fetched again after, so a rotated credential
reaches warm containers (``functions/_runtime.Container.refresh`` rebuilds the settings);
``reset()`` forgets them at once (a login the database refused). Nothing here logs or formats
a secret value, and the SDK's loggers stay at WARNING (``ordinaut.logs.QUIET_LOGGERS``). boto3
is imported on first use: it ships with the Lambda image, not with the package.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from ordinaut.config import Settings, load_settings

log = logging.getLogger("ordinaut.cloud")

DATABASE_SECRET_ENV = "ORDINAUT_DATABASE_SECRET_ARN"
REDIS_SECRET_ENV = "ORDINAUT_REDIS_SECRET_ARN"
SECRETS_KEY_ENV = "ORDINAUT_SECRETS_KEY_ARN"
WORK_QUEUE_ENV = "ORDINAUT_WORK_QUEUE_URL"
FANOUT_MAX_ENV = "ORDINAUT_WORKER_FANOUT_MAX"
# The database endpoint, for a secret that holds only the credential (RDS-managed): secret key
# -> environment variable.
DATABASE_ENDPOINT_ENV = {
    "host": "ORDINAUT_DATABASE_HOST",
    "port": "ORDINAUT_DATABASE_PORT",
    "dbname": "ORDINAUT_DATABASE_NAME",
    "sslmode": "ORDINAUT_DATABASE_SSLMODE",
}
DEFAULT_FANOUT_MAX = 4
# A Lambda container serves one invocation at a time: two connections are plenty, and the
# database (or RDS Proxy) sees (functions x concurrency x 2) at most.
SERVERLESS_POOL = {"db_pool_min": 1, "db_pool_max": 2}
SQS_MAX_DELAY_S = 900
SQS_BATCH = 10

# Container-lifetime caches (one Lambda container = one process). reset() empties them.
# arn -> (time.monotonic() when fetched, the secret's JSON object)
_secrets: dict[str, tuple[float, dict[str, Any]]] = {}
_monotonic = time.monotonic  # the secrets' TTL clock (tests move it)
_clients: dict[str, Any] = {}


class SecretError(RuntimeError):
    """A secret named in the environment is unusable; the message names the variable, never
    the value."""


def reset() -> None:
    """Forget fetched secrets and AWS clients (tests; a process that rotates credentials)."""
    _secrets.clear()
    _clients.clear()


def aws_client(service: str) -> Any:
    """A boto3 client for ``service``, created on first use and kept for the container."""
    client = _clients.get(service)
    if client is None:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"}
        )
        client = boto3.client(service, config=config)
        _clients[service] = client
    return client


def secret_json(
    environ: Mapping[str, str], env_name: str, *, ttl_s: float = 300.0
) -> dict[str, Any] | None:
    """The JSON object in the secret whose ARN is ``environ[env_name]`` (None when unset),
    fetched again once the copy kept is ``ttl_s`` old."""
    arn = environ.get(env_name, "")
    if not arn:
        return None
    cached = _secrets.get(arn)
    if cached is not None and _monotonic() - cached[0] < ttl_s:
        return cached[1]
    response = aws_client("secretsmanager").get_secret_value(SecretId=arn)
    text = response.get("SecretString")
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        # `from None`: the decoder's exception carries the secret text as its .doc
        raise SecretError(f"{env_name}: the secret is not JSON") from None
    if not isinstance(value, dict):
        raise SecretError(f"{env_name}: the secret must be a JSON object")
    if cached is not None and cached[1] != value:
        log.info("secret rotated", extra={"secret_env": env_name})
    _secrets[arn] = (_monotonic(), value)
    log.info("secret loaded", extra={"secret_env": env_name})
    return value


def _field(secret: Mapping[str, Any], key: str, env_name: str, default: Any = None) -> Any:
    value = secret.get(key, default)
    if value is None or value == "":
        raise SecretError(f"{env_name}: the secret has no {key!r} field")
    return value


def database_url(
    secret: Mapping[str, Any],
    env_name: str = DATABASE_SECRET_ENV,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``url`` when the secret has one, else postgresql://user:password@host:port/db?sslmode.

    The credential comes from the secret; the endpoint from the secret too, else from
    ``DATABASE_ENDPOINT_ENV`` in ``environ``: an RDS-managed master secret holds only
    ``{"username", "password"}`` (and RDS rotates it). A host that is a path is a unix socket.
    """
    if secret.get("url"):
        return str(secret["url"])
    env = environ or {}

    def endpoint(key: str, default: Any = None) -> Any:
        value = secret.get(key)
        if value is None or value == "":
            value = env.get(DATABASE_ENDPOINT_ENV[key]) or default
        if value is None or value == "":
            raise SecretError(
                f"{env_name}: the secret has no {key!r} field and "
                f"{DATABASE_ENDPOINT_ENV[key]} is not set"
            )
        return value

    user = quote(str(_field(secret, "username", env_name)), safe="")
    password = quote(str(_field(secret, "password", env_name)), safe="")
    host = str(endpoint("host"))
    try:
        port = int(endpoint("port", 5432))
    except ValueError:
        raise SecretError(f"{env_name}: the port is not a number") from None
    dbname = quote(str(endpoint("dbname")), safe="")
    sslmode = quote(str(endpoint("sslmode", "require")), safe="")
    if host.startswith("/"):  # a unix socket directory
        where = f"/{dbname}?host={quote(host, safe='/')}&port={port}&sslmode={sslmode}"
        return f"postgresql://{user}:{password}@{where}"
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}?sslmode={sslmode}"


def redis_url(secret: Mapping[str, Any], env_name: str = REDIS_SECRET_ENV) -> str:
    """``url`` when the secret has one, else redis[s]://:auth_token@host:port/0."""
    if secret.get("url"):
        return str(secret["url"])
    host = _field(secret, "host", env_name)
    port = int(_field(secret, "port", env_name, 6379))
    tls = str(secret.get("tls", True)).lower() in ("1", "true", "yes")
    scheme = "rediss" if tls else "redis"
    token = secret.get("auth_token")
    auth = f":{quote(str(token), safe='')}@" if token else ""
    return f"{scheme}://{auth}{host}:{port}/0"


def settings_from_environment(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """``load_settings(environ)`` with credentials from the Secrets Manager ARNs it names.

    A secret ARN wins over the plain ``ORDINAUT_DATABASE_URL`` / ``ORDINAUT_REDIS_URL`` /
    ``ORDINAUT_SECRETS_KEY``; without ARNs this is ``load_settings`` with a small pool.
    """
    values: dict[str, Any] = {
        name: value
        for name, value in SERVERLESS_POOL.items()
        if not environ.get(f"ORDINAUT_{name.upper()}")
    }
    base = load_settings(environ)  # read once: the secrets' TTL, then the result below
    ttl_s = base.secrets_ttl_s
    database = secret_json(environ, DATABASE_SECRET_ENV, ttl_s=ttl_s)
    if database is not None:
        values["database_url"] = database_url(database, environ=environ)
    redis = secret_json(environ, REDIS_SECRET_ENV, ttl_s=ttl_s)
    if redis is not None:
        values["redis_url"] = redis_url(redis)
    key = secret_json(environ, SECRETS_KEY_ENV, ttl_s=ttl_s)
    if key is not None:
        values["secrets_key"] = str(_field(key, "secrets_key", SECRETS_KEY_ENV))
    values.update(overrides)
    return base.replace(**values)


# --- worker wake-ups ---------------------------------------------------------------------------


def fanout_max(environ: Mapping[str, str]) -> int:
    """``ORDINAUT_WORKER_FANOUT_MAX`` (default 4): most wake-ups one tick sends."""
    raw = environ.get(FANOUT_MAX_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_FANOUT_MAX
    except ValueError:
        raise ValueError(f"{FANOUT_MAX_ENV}: cannot read {raw!r} as int") from None
    return max(0, value)


def wakeups_needed(queued: int, batch: int, most: int) -> int:
    """Workers to wake for ``queued`` rows when one worker takes ``batch`` at a time: at least
    one while anything is queued, never more than ``most``."""
    if queued <= 0 or most <= 0:
        return 0
    return max(1, min(most, math.ceil(queued / max(1, batch))))


def send_wakeups(
    queue_url: str, count: int, *, delay_s: int = 0, source: str = "ordinaut.tick"
) -> int:
    """Put ``count`` wake-up messages on the work queue (visible after ``delay_s``); returns
    how many SQS accepted. The body is informational: a worker drains whatever is due."""
    delay = max(0, min(SQS_MAX_DELAY_S, int(delay_s)))
    body = json.dumps({"source": source, "sent_at": time.time()})
    sqs = aws_client("sqs")
    sent = 0
    for start in range(0, count, SQS_BATCH):
        entries = [
            {"Id": str(i), "MessageBody": body, "DelaySeconds": delay}
            for i in range(start, min(count, start + SQS_BATCH))
        ]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        sent += len(response.get("Successful", []))
        for failure in response.get("Failed", []):
            log.warning(
                "wake-up message rejected",
                extra={"code": failure.get("Code"), "error": failure.get("Message")},
            )
    return sent


class Waker:
    """Wakes a Lambda worker when a request (``run_now``, ``POST /events``, an event from SQS)
    created work due now, so it starts within about a second instead of at the next tick.

    ``await wake()`` after the commit. Bounded and coalesced: one message per call at most,
    one send in flight per process, and calls arriving while a send is in flight share the
    next one (a send that starts after a call covers it: no wake-up is lost, none is spent
    twice). It never raises: when SQS fails or is slow (``timeout_s``) the work is only late,
    so it logs, counts ``ordinaut_worker_wakeups_total{result="failed"}`` and calls
    ``on_failure`` (the Lambda handlers emit an EMF metric there).
    """

    def __init__(
        self,
        queue_url: str,
        *,
        source: str,
        timeout_s: float = 2.0,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.source = source
        self.timeout_s = timeout_s
        self.on_failure = on_failure
        self._requested = 0
        self._covered = 0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def _the_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def wake(self) -> bool:
        """Make sure a wake-up is sent after this call began; False when it could not be."""
        from ordinaut import metrics

        self._requested += 1
        mine = self._requested
        async with self._the_lock():
            if self._covered >= mine:
                return True
            target = self._requested
            try:
                async with asyncio.timeout(self.timeout_s):
                    sent = await asyncio.to_thread(
                        send_wakeups, self.queue_url, 1, source=self.source
                    )
            except Exception as exc:  # SQS down, throttled, misconfigured: the work is late
                log.warning("worker wake-up not sent", extra={"error": repr(exc)})
                sent = 0
            if sent:
                self._covered = target
                metrics.WAKEUPS.labels("sent").inc()
                return True
            metrics.WAKEUPS.labels("failed").inc()
            if self.on_failure is not None:
                try:
                    self.on_failure()
                except Exception:
                    log.exception("wake-up failure hook failed")
            return False
