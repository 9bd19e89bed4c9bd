"""Lambda handler fixtures: the environment a function sees, handler modules loaded fresh per
test (a cold start each), an owner agent and a task factory on the real database clock.

Handlers are called the way Lambda calls them: synchronously, on a thread with no running
event loop (``asyncio.to_thread``), while the test itself uses the session's pool.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest
from aws_lambda_powertools import Metrics
from fn_support import ECHO, HandlerLoader, TaskFactory, db_now

from ordinaut import cloud
from ordinaut.config import Settings
from ordinaut.pipeline import default_registry
from ordinaut.store import agents, tasks
from ordinaut.taskdefs import prepare

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # functions/ is a top-level package beside shared/
    sys.path.insert(0, str(REPO))


SERVICE = "ordinaut-test"  # POWERTOOLS_SERVICE_NAME in lambda_env


def _phase_handler(handler: logging.Handler) -> bool:
    """pytest's per-phase capture handlers come and go on their own."""
    return type(handler).__name__ == "LogCaptureHandler"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Handlers configure the root logger at import (in Lambda mode they replace its
    handlers): put it back afterwards, and forget the Powertools logger, whose handler holds
    this test's captured stdout."""
    root = logging.getLogger()
    kept = [h for h in root.handlers if not _phase_handler(h)]
    level = root.level
    yield
    for handler in list(root.handlers):
        if handler not in kept and not _phase_handler(handler):
            root.removeHandler(handler)
    for handler in kept:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    logging.Logger.manager.loggerDict.pop(SERVICE, None)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    cloud.reset()
    Metrics().clear_metrics()
    yield
    cloud.reset()
    Metrics().clear_metrics()


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, servers: dict[str, str], settings: Settings
) -> pytest.MonkeyPatch:
    """The environment Terraform gives a function, with plain URLs instead of secret ARNs."""
    for name in (
        "AWS_LAMBDA_FUNCTION_NAME",
        cloud.DATABASE_SECRET_ENV,
        cloud.REDIS_SECRET_ENV,
        cloud.SECRETS_KEY_ENV,
        cloud.WORK_QUEUE_ENV,
        cloud.FANOUT_MAX_ENV,
        "ORDINAUT_DB_POOL_MIN",
        "ORDINAUT_DB_POOL_MAX",
        "ORDINAUT_SECRETS_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORDINAUT_DATABASE_URL", servers["database_url"])
    monkeypatch.setenv("ORDINAUT_REDIS_URL", servers["redis_url"])
    monkeypatch.setenv("ORDINAUT_MIGRATIONS_DIR", settings.migrations_dir)
    monkeypatch.setenv("ORDINAUT_HOME", settings.home)
    monkeypatch.setenv("ORDINAUT_LOG_JSON", "false")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Ordinaut")
    # moto: fake credentials, a region, and never a real endpoint
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return monkeypatch


@pytest.fixture
async def load_handler(lambda_env: pytest.MonkeyPatch) -> AsyncIterator[HandlerLoader]:
    """``await load_handler("worker")``: functions.worker.handler imported afresh (a cold
    start); its container is closed at teardown."""
    loaded: list[ModuleType] = []

    async def load(name: str) -> ModuleType:
        module_name = f"functions.{name}.handler"
        sys.modules.pop(module_name, None)
        module = importlib.import_module(module_name)
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        container = module.container
        app = getattr(module, "app", None)
        await asyncio.to_thread(_close, container, app)


def _close(container: Any, app: Any) -> None:
    async def close() -> None:
        if app is not None:
            await app.state.deps.close()
        await container.close()

    container.run(close())
    container.close_loop()


@pytest.fixture
async def owner(pool: asyncpg.Pool) -> uuid.UUID:
    async with pool.acquire() as conn:
        agent, _ = await agents.create_agent(
            conn, name="owner", scopes=["tasks:read", "tasks:write"], now=await db_now(pool)
        )
    return agent.id


@pytest.fixture
def make_task(pool: asyncpg.Pool, settings: Settings, owner: uuid.UUID) -> TaskFactory:
    """Tasks prepared at the database's current time (handlers use the database clock)."""
    registry = default_registry(settings)

    async def make(**fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "title": "t",
            "description": "",
            "schedule_kind": "cron",
            "schedule_expr": "* * * * *",
            "timezone": "UTC",
            "payload": ECHO,
            "priority": 5,
            "max_retries": 0,
            "backoff_strategy": "fixed",
            "dedupe_key": None,
            "dedupe_window_seconds": None,
            "concurrency_key": None,
            "misfire_policy": "run_once",
            "overlap_policy": "allow",
        }
        base.update(fields)
        now = await db_now(pool)
        prepared = prepare(base, now=now, settings=settings, registry=registry)
        prepared.update(status="active", snoozed_until=None)
        async with pool.acquire() as conn:
            return await tasks.insert_task(
                conn, task_id=uuid.uuid4(), owner_id=owner, task=prepared, now=now
            )

    return make
