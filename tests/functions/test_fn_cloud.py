"""ordinaut.cloud under moto: secrets fetched once per container, URLs built, wake-ups sent."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fn_support import FakeContext, call
from moto import mock_aws

from ordinaut import cloud

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.cloud

DB_SECRET = {
    "engine": "postgres",
    "username": "ordinaut",
    "password": "p@ss/w:rd?#%",
    "host": "proxy.example.internal",
    "port": 5432,
    "dbname": "ordinaut",
    "sslmode": "require",
}
REDIS_SECRET = {"host": "redis.example.internal", "port": 6379, "auth_token": "t0k/en", "tls": True}
KEY_SECRET = {"secrets_key": "a" * 43 + "="}


@pytest.fixture
def aws(lambda_env: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("ORDINAUT_DATABASE_URL", "ORDINAUT_REDIS_URL"):
        lambda_env.delenv(name, raising=False)
    with mock_aws():
        yield lambda_env


def put_secret(name: str, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    arn: str = boto3.client("secretsmanager").create_secret(Name=name, SecretString=text)["ARN"]
    return arn


def count_fetches() -> list[str]:
    """SecretIds of every GetSecretValue the container's client sends from now on."""
    seen: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params["SecretId"])

    client = cloud.aws_client("secretsmanager")
    client.meta.events.register("provide-client-params.secrets-manager.GetSecretValue", record)
    return seen


def test_secrets_are_fetched_once_and_become_urls(aws: pytest.MonkeyPatch) -> None:
    arns = {
        cloud.DATABASE_SECRET_ENV: put_secret("ordinaut/database", DB_SECRET),
        cloud.REDIS_SECRET_ENV: put_secret("ordinaut/redis", REDIS_SECRET),
        cloud.SECRETS_KEY_ENV: put_secret("ordinaut/secrets-key", KEY_SECRET),
    }
    for name, arn in arns.items():
        aws.setenv(name, arn)
    fetched = count_fetches()
    settings = cloud.settings_from_environment(os.environ)
    again = cloud.settings_from_environment(os.environ)
    assert sorted(fetched) == sorted(arns.values())  # three calls for two builds
    assert settings == again
    assert settings.database_url == (
        "postgresql://ordinaut:p%40ss%2Fw%3Ard%3F%23%25@proxy.example.internal:5432/ordinaut"
        "?sslmode=require"
    )
    assert settings.redis_url == "rediss://:t0k%2Fen@redis.example.internal:6379/0"
    assert settings.secrets_key == KEY_SECRET["secrets_key"]
    assert (settings.db_pool_min, settings.db_pool_max) == (1, 2)


def test_a_url_in_the_secret_wins(aws: pytest.MonkeyPatch) -> None:
    url = "postgresql://u:p@db.internal:5432/x?sslmode=verify-full"
    aws.setenv(cloud.DATABASE_SECRET_ENV, put_secret("db", {**DB_SECRET, "url": url}))
    redis = "rediss://:abc@cache.internal:6379/0"
    aws.setenv(cloud.REDIS_SECRET_ENV, put_secret("redis", {"url": redis}))
    settings = cloud.settings_from_environment(os.environ)
    assert (settings.database_url, settings.redis_url) == (url, redis)


def test_defaults_fill_port_sslmode_and_plain_redis(aws: pytest.MonkeyPatch) -> None:
    db = {k: v for k, v in DB_SECRET.items() if k not in ("port", "sslmode")}
    aws.setenv(cloud.DATABASE_SECRET_ENV, put_secret("db", db))
    aws.setenv(cloud.REDIS_SECRET_ENV, put_secret("redis", {"host": "r", "tls": False}))
    settings = cloud.settings_from_environment(os.environ)
    assert settings.database_url.endswith("@proxy.example.internal:5432/ordinaut?sslmode=require")
    assert settings.redis_url == "redis://r:6379/0"


@pytest.mark.parametrize("missing", ["username", "password", "host", "dbname"])
def test_a_missing_field_names_the_variable_not_the_value(
    aws: pytest.MonkeyPatch, missing: str
) -> None:
    secret = {k: v for k, v in DB_SECRET.items() if k != missing}
    aws.setenv(cloud.DATABASE_SECRET_ENV, put_secret("db", secret))
    with pytest.raises(cloud.SecretError) as raised:
        cloud.settings_from_environment(os.environ)
    message = str(raised.value)
    assert cloud.DATABASE_SECRET_ENV in message
    assert repr(missing) in message
    assert DB_SECRET["password"] not in message


def test_a_secret_that_is_not_json_is_reported_without_its_text(aws: pytest.MonkeyPatch) -> None:
    aws.setenv(cloud.SECRETS_KEY_ENV, put_secret("key", "s3cr3t-not-json"))
    with pytest.raises(cloud.SecretError, match=cloud.SECRETS_KEY_ENV) as raised:
        cloud.settings_from_environment(os.environ)
    assert "s3cr3t" not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    aws.setenv(cloud.SECRETS_KEY_ENV, put_secret("key2", {"other": 1}))
    with pytest.raises(cloud.SecretError, match="'secrets_key'"):
        cloud.settings_from_environment(os.environ)


def test_without_arns_it_is_load_settings_with_a_small_pool(
    lambda_env: pytest.MonkeyPatch,
) -> None:
    env = {"ORDINAUT_DATABASE_URL": "postgresql://x@h/db", "ORDINAUT_DB_POOL_MAX": "5"}
    settings = cloud.settings_from_environment(env)
    assert settings.database_url == "postgresql://x@h/db"
    assert (settings.db_pool_min, settings.db_pool_max) == (1, 5)


def test_wakeups_land_in_the_queue_in_batches_of_ten(aws: pytest.MonkeyPatch) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    assert cloud.send_wakeups(url, 12) == 12
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "12"
    assert cloud.send_wakeups(url, 2, delay_s=30) == 2
    delayed = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert delayed["ApproximateNumberOfMessagesDelayed"] == "2"


def test_fanout_max_from_the_environment() -> None:
    assert cloud.fanout_max({}) == cloud.DEFAULT_FANOUT_MAX
    assert cloud.fanout_max({cloud.FANOUT_MAX_ENV: "7"}) == 7
    with pytest.raises(ValueError, match=cloud.FANOUT_MAX_ENV):
        cloud.fanout_max({cloud.FANOUT_MAX_ENV: "many"})


class Ticking:
    """The secrets' TTL clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_secrets_are_fetched_again_after_their_ttl(aws: pytest.MonkeyPatch) -> None:
    ticking = Ticking()
    aws.setattr(cloud, "_monotonic", ticking)
    aws.setenv("ORDINAUT_SECRETS_TTL_S", "300")
    arn = put_secret("ordinaut/database", DB_SECRET)
    aws.setenv(cloud.DATABASE_SECRET_ENV, arn)
    fetched = count_fetches()
    first = cloud.settings_from_environment(os.environ)
    rotated = {**DB_SECRET, "password": "rotated"}
    boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(rotated))
    ticking.now += 299
    assert cloud.settings_from_environment(os.environ) == first  # within the TTL: the copy
    assert len(fetched) == 1
    ticking.now += 2
    after = cloud.settings_from_environment(os.environ)
    assert len(fetched) == 2
    assert "ordinaut:rotated@" in after.database_url


def test_sdk_loggers_never_log_below_warning(
    aws: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """At LOG_LEVEL=DEBUG botocore would print the GetSecretValue response, secret included."""
    from ordinaut import logs

    root = logging.getLogger()
    level = root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS}
    try:
        for name in logs.QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        logs.configure("DEBUG", json_output=False)
        aws.setenv(cloud.DATABASE_SECRET_ENV, put_secret("db", DB_SECRET))
        with caplog.at_level(logging.DEBUG):
            cloud.settings_from_environment(os.environ)
        for name in ("botocore", "boto3", "urllib3"):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert DB_SECRET["password"] not in text
        assert any(r.getMessage() == "secret loaded" for r in caplog.records)
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_ordinaut", False):
                root.removeHandler(handler)
        root.setLevel(level)
        for name, value in quiet.items():
            logging.getLogger(name).setLevel(value)


async def test_a_rotated_database_secret_reaches_a_warm_container(
    aws: pytest.MonkeyPatch, servers: dict[str, str], load_handler: Any, pool: Any
) -> None:
    """The worker container reconnects with the new credentials once the TTL is over."""
    ticking = Ticking()
    aws.setattr(cloud, "_monotonic", ticking)
    url = servers["database_url"]
    arn = put_secret("ordinaut/database", {"url": url})
    aws.setenv(cloud.DATABASE_SECRET_ENV, arn)
    worker = await load_handler("worker")
    context = FakeContext(remaining_ms=7_000)
    aws.setenv("ORDINAUT_DRAIN_MARGIN_S", "6.5")
    await call(worker.handler, {"Records": []}, context)
    pool = worker.container.pool
    assert pool is not None
    rotated = url + ("&" if "?" in url else "?") + "application_name=rotated"
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn, SecretString=json.dumps({"url": rotated})
    )
    ticking.now += 301
    await call(worker.handler, {"Records": []}, context)
    assert worker.container.settings.database_url == rotated
    assert worker.container.pool is not None
    assert worker.container.pool is not pool


def test_an_rds_managed_secret_with_the_endpoint_in_the_environment(
    aws: pytest.MonkeyPatch,
) -> None:
    """RDS's managed master secret is {"username", "password"}: Terraform puts the proxy's
    endpoint in ORDINAUT_DATABASE_HOST / _PORT / _NAME / _SSLMODE."""
    managed = {"username": "ordinaut", "password": "r0t/ated?"}
    aws.setenv(cloud.DATABASE_SECRET_ENV, put_secret("rds!db-1234", managed))
    with pytest.raises(cloud.SecretError, match="ORDINAUT_DATABASE_HOST") as raised:
        cloud.settings_from_environment(os.environ)
    assert managed["password"] not in str(raised.value)
    aws.setenv("ORDINAUT_DATABASE_HOST", "proxy.example.internal")
    with pytest.raises(cloud.SecretError, match="ORDINAUT_DATABASE_NAME"):
        cloud.settings_from_environment(os.environ)
    aws.setenv("ORDINAUT_DATABASE_NAME", "ordinaut")
    settings = cloud.settings_from_environment(os.environ)
    assert settings.database_url == (
        "postgresql://ordinaut:r0t%2Fated%3F@proxy.example.internal:5432/ordinaut?sslmode=require"
    )
    aws.setenv("ORDINAUT_DATABASE_PORT", "6432")
    aws.setenv("ORDINAUT_DATABASE_SSLMODE", "verify-full")
    cloud.reset()
    assert cloud.settings_from_environment(os.environ).database_url.endswith(
        "@proxy.example.internal:6432/ordinaut?sslmode=verify-full"
    )
    # a unix socket directory (the local servers of the end-to-end test)
    aws.setenv("ORDINAUT_DATABASE_HOST", "/tmp/pg sock")
    cloud.reset()
    assert cloud.settings_from_environment(os.environ).database_url == (
        "postgresql://ordinaut:r0t%2Fated%3F@/ordinaut?host=/tmp/pg%20sock&port=6432"
        "&sslmode=verify-full"
    )


async def test_lambda_logging_at_debug_keeps_the_sdk_at_warning(
    load_handler: Any, lambda_env: pytest.MonkeyPatch
) -> None:
    from ordinaut import logs

    for name in logs.QUIET_LOGGERS:
        lambda_env.setattr(logging.getLogger(name), "level", logging.NOTSET)
    lambda_env.setenv("AWS_LAMBDA_FUNCTION_NAME", "ordinaut-test-worker")
    lambda_env.setenv("ORDINAUT_LOG_LEVEL", "DEBUG")
    await load_handler("worker")
    assert logging.getLogger().level == logging.DEBUG
    for name in ("botocore", "boto3", "urllib3"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING


async def test_a_refused_login_reads_the_rotated_secret_at_once(
    aws: pytest.MonkeyPatch, servers: dict[str, str], load_handler: Any, pool: Any
) -> None:
    """Within the TTL, a password the database refuses means the secret rotated: read it again
    now instead of failing until the TTL ends."""
    import asyncpg

    from functions import _runtime

    url = servers["database_url"]
    arn = put_secret("ordinaut/database", {"url": url + "&application_name=old"})
    aws.setenv(cloud.DATABASE_SECRET_ENV, arn)
    worker = await load_handler("worker")
    rotated = url + "&application_name=new"
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn, SecretString=json.dumps({"url": rotated})
    )
    real = _runtime.db.create_pool
    tried: list[str] = []

    async def create_pool(settings: Any, **kw: Any) -> Any:
        tried.append(settings.database_url)
        if settings.database_url.endswith("=old"):  # the proxy refuses the old password
            raise asyncpg.InvalidPasswordError("password authentication failed")
        return await real(settings, **kw)

    aws.setattr(_runtime.db, "create_pool", create_pool)
    aws.setenv("ORDINAUT_DRAIN_MARGIN_S", "6.5")
    await call(worker.handler, {"Records": []}, FakeContext(remaining_ms=7_000))
    assert tried == [url + "&application_name=old", rotated]
    assert worker.container.settings.database_url == rotated


def test_a_lambda_container_traces_when_otel_asks_and_flushes_before_it_freezes(
    tmp_path: Path,
) -> None:
    """OTEL_TRACES_EXPORTER turns tracing on at cold start; the spans of an invocation are
    exported when the handler returns, not left batched in a container about to freeze."""
    script = """
import os, sys
from functions._runtime import Container
from ordinaut import tracing
container = Container.from_environment()
assert tracing.ENABLED
def work(event, context):
    with tracing.span("invocation-work"):
        return {"ok": True}
handler = container.entry_point(work)
print(handler({}, None))
print("HANDLER-RETURNED", flush=True)
os._exit(0)  # no interpreter shutdown: only what the handler flushed is out
"""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ORDINAUT_", "OTEL_"))},
        "OTEL_TRACES_EXPORTER": "console",
        "ORDINAUT_DATABASE_URL": "postgresql://127.0.0.1:1/none",
        "ORDINAUT_HOME": str(tmp_path),
        "POWERTOOLS_SERVICE_NAME": "ordinaut-test",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "shared")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "HANDLER-RETURNED" in out.stdout
    assert '"name": "invocation-work"' in out.stdout.split("HANDLER-RETURNED")[0]
