"""Tokens (exchange, renewal on 401, refresh, revoke) and bounded retries on 429 / 503."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from samples import CRON_TASK

from ordinaut.api import create_app, middleware
from ordinaut.client import (
    AsyncOrdinaut,
    AuthError,
    OrdinautConnectionError,
    RateLimitedError,
    Tokens,
    UnavailableError,
)
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings


def asgi(app: FastAPI) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=app)


async def test_agent_credentials_are_exchanged_and_renewed_once(
    app: FastAPI, agent: dict[str, Any]
) -> None:
    heard: list[Tokens] = []
    async with AsyncOrdinaut(
        "http://test",
        agent_id=agent["agent_id"],
        agent_secret=agent["secret"],
        transport=asgi(app),
        on_tokens=heard.append,
    ) as client:
        assert (await client.list_tasks()).total == 0  # exchanged on first use
        assert len(heard) == 1
        assert client.token == heard[0].access_token
        client.credentials.token = "ordinaut_at_expired"  # a token the API no longer knows
        await client.create_task(CRON_TASK)
        assert len(heard) == 2
        assert client.token == heard[1].access_token

    async with AsyncOrdinaut(
        "http://test", agent_id=agent["agent_id"], agent_secret="wrong", transport=asgi(app)
    ) as bad:
        with pytest.raises(AuthError) as caught:
            await bad.list_tasks()
        assert caught.value.status == 401


async def test_refresh_token_renews_and_revoke_ends_the_login(
    app: FastAPI, agent: dict[str, Any]
) -> None:
    async with AsyncOrdinaut(
        "http://test",
        token="ordinaut_at_expired",
        refresh_token=agent["refresh_token"],
        transport=asgi(app),
    ) as client:
        await client.list_tasks()
        first = client.token
        assert first
        assert first != agent["token"]
        assert client.credentials.refresh_token != agent["refresh_token"]  # rotated
        rotated = await client.refresh_token()
        assert client.token == rotated.access_token != first
        await client.revoke_token()
        assert client.token is None
        with pytest.raises(AuthError):
            await client.list_tasks()

    async with AsyncOrdinaut("http://test", token="bogus", transport=asgi(app)) as fixed:
        with pytest.raises(AuthError):  # a bare token cannot be renewed: one request, 401
            await fixed.list_tasks()


async def test_admin_manages_agents_through_the_client(app: FastAPI, admin: dict[str, Any]) -> None:
    async with AsyncOrdinaut("http://test", token=admin["token"], transport=asgi(app)) as root:
        bot = await root.create_agent("bot", ["tasks:read"])
        assert bot.agent_secret
        assert bot.scopes == ["tasks:read"]
        assert {a.name async for a in root.iter_agents(page_size=1)} == {"admin", "bot"}
        assert (await root.get_agent(bot.id)).name == "bot"
        updated = await root.update_agent(bot.id, scopes=["tasks:read", "runs:read"])
        assert updated.scopes == ["tasks:read", "runs:read"]
        rotated = await root.rotate_agent_secret(bot.id)
        async with AsyncOrdinaut("http://test", transport=asgi(app)) as as_bot:
            tokens = await as_bot.exchange_token(bot.id, rotated.agent_secret)
            assert tokens.scope.split() == ["tasks:read", "runs:read"]
            assert (await as_bot.list_tasks()).items == []
        await root.delete_agent(bot.id)
        assert (await root.list_agents()).total == 1


async def test_429_is_retried_after_retry_after_and_bounded(
    settings: Settings,
    pool: Any,
    clock: FrozenClock,
    agent: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The rate limiter's own clock, moved by the client's sleeps: no real waiting.
    now = [1000.0]
    monkeypatch.setattr(
        middleware,
        "time",
        SimpleNamespace(monotonic=lambda: now[0], perf_counter=time.perf_counter),
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limited = create_app(settings.replace(rate_limit_per_minute=2), clock=clock, pool=pool)
    async with AsyncOrdinaut(
        "http://test", token=agent["token"], transport=asgi(limited), sleep=sleep
    ) as client:
        await client.list_tasks()
        await client.list_tasks()  # the whole bucket
        assert waits == []
        await client.list_tasks()  # 429 with Retry-After: 30, then served
        assert waits == [30.0]
    async with AsyncOrdinaut(
        "http://test", token=agent["token"], transport=asgi(limited), max_retry_wait=5
    ) as impatient:
        with pytest.raises(RateLimitedError) as caught:  # Retry-After 30 > 5: no early retry
            await impatient.list_tasks()
        assert caught.value.retry_after == 30
        assert caught.value.code == "rate_limited"
    await limited.state.deps.close()


def flaky(statuses: list[int], seen: list[httpx.Request]) -> httpx.MockTransport:
    """Answers the given statuses in turn (the last one forever), recording each request."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses[min(len(seen), len(statuses)) - 1]
        if status == 503:
            body = {"error": {"code": "unavailable", "message": "db down", "details": None}}
            return httpx.Response(
                503, json={**body, "request_id": "r"}, headers={"Retry-After": "0"}
            )
        return httpx.Response(
            status,
            json={
                **CRON_TASK,
                "id": "t1",
                "status": "active",
                "created_by": "a",
                "created_at": "2026-03-02T12:00:00Z",
                "updated_at": "2026-03-02T12:00:00Z",
            },
        )

    return httpx.MockTransport(handle)


async def no_sleep(_: float) -> None:
    return None


async def test_503_is_retried_only_when_safe_and_keeps_the_idempotency_key() -> None:
    seen: list[httpx.Request] = []
    async with AsyncOrdinaut(
        "http://x", token="t", transport=flaky([503, 503, 201], seen), sleep=no_sleep
    ) as client:
        task = await client.create_task(CRON_TASK)
    assert task.id == "t1"
    assert len(seen) == 3
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1
    assert len(keys.pop()) >= 16

    seen.clear()
    async with AsyncOrdinaut(
        "http://x", token="t", transport=flaky([503], seen), sleep=no_sleep, max_retries=2
    ) as client:
        with pytest.raises(UnavailableError) as caught:
            await client.get_task("t1")
        assert len(seen) == 3
        assert caught.value.request_id == "r"
        seen.clear()
        with pytest.raises(UnavailableError):  # run_now is not idempotent: never resent
            await client.run_task_now("t1")
        assert len(seen) == 1


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_server_raises_a_connection_error() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    port = unused_port()  # nothing listens there
    async with AsyncOrdinaut(f"http://127.0.0.1:{port}", token="t", sleep=sleep) as client:
        with pytest.raises(OrdinautConnectionError) as caught:
            await client.list_tasks()
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert len(waits) == 3
    assert all(0 < w <= 30 for w in waits)
