"""Helpers for the Lambda handler tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

import asyncpg
from support import queue_runs

HandlerLoader = Callable[[str], Awaitable[ModuleType]]  # the load_handler fixture
TaskFactory = Callable[..., Awaitable[dict[str, Any]]]  # the make_task fixture

ECHO = {"pipeline": [{"id": "hello", "uses": "echo", "with": {"msg": "hello"}}]}


@dataclass
class FakeContext:
    """What handlers and Powertools read from the Lambda context."""

    remaining_ms: int = 60_000
    function_name: str = "ordinaut-test-fn"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


async def call(handler: Callable[[Any, Any], Any], event: Any, context: FakeContext) -> Any:
    """Invoke a handler as Lambda does: synchronously, off the test's event loop."""
    return await asyncio.to_thread(handler, event, context)


async def db_now(pool: asyncpg.Pool) -> datetime:
    now: datetime = await pool.fetchval("SELECT clock_timestamp()")
    return now


async def queue_now(pool: asyncpg.Pool, task: dict[str, Any], n: int = 1) -> list[uuid.UUID]:
    """``n`` runs of ``task`` due now (as "run now" would queue them)."""
    return await queue_runs(pool, task, at=await db_now(pool), n=n)
