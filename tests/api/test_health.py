"""Health components, readiness, fast 503 with the database down, degraded with Redis down,
and the metrics endpoint."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from ordinaut.api import create_app
from ordinaut.api import deps as deps_module
from ordinaut.clock import DatabaseClock, FrozenClock
from ordinaut.config import Settings
from ordinaut.store import outbox

BASE_URL = "http://test"


async def mark_scheduler(pool: asyncpg.Pool, at: Any) -> None:
    await pool.execute(
        "INSERT INTO scheduler_state (name, last_tick_at, last_duration_ms, last_materialized)"
        " VALUES ('main', $1, 1.5, 0)",
        at,
    )


async def mark_worker(pool: asyncpg.Pool, at: Any) -> None:
    await pool.execute(
        "INSERT INTO worker_heartbeats (worker_id, hostname, pid, started_at, last_seen)"
        " VALUES ($1, 'h', 1, $2, $2)",
        f"w-{uuid.uuid4().hex[:6]}",
        at,
    )


async def test_live_and_ready(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/live")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    r = await client.get("/health/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


async def test_components_with_everything_up(
    client: httpx.AsyncClient, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    doc = r.json()
    components = doc["components"]
    assert components["database"]["status"] == "healthy"
    assert components["database"]["latency_ms"] >= 0
    assert components["redis"]["status"] == "healthy"
    assert components["redis"]["outbox_backlog"] == 0
    # Never ticked and no workers: up, but degraded.
    assert components["scheduler"]["status"] == "unknown"
    assert components["workers"] == {"status": "degraded", "live": 0, "window_s": 30.0}
    assert doc["status"] == "degraded"

    await mark_scheduler(pool, clock.now() - timedelta(seconds=4))
    await mark_worker(pool, clock.now() - timedelta(seconds=5))
    await mark_worker(pool, clock.now() - timedelta(seconds=300))  # long gone
    async with pool.acquire() as conn:
        await outbox.append(
            conn,
            [outbox.OutboxEvent("task.created", None, None, {}) for _ in range(2)],
            now=clock.now(),
        )
    doc = (await client.get("/health")).json()
    assert doc["status"] == "healthy", doc
    assert doc["checked_at"] == "2026-03-02T12:00:00Z"
    assert doc["components"]["workers"]["live"] == 1
    assert doc["components"]["scheduler"]["age_s"] == 4.0
    assert doc["components"]["scheduler"]["last_tick_at"] == "2026-03-02T11:59:56Z"
    assert doc["components"]["redis"]["outbox_backlog"] == 2


async def test_stale_scheduler_is_degraded(
    client: httpx.AsyncClient, pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    await mark_worker(pool, clock.now())
    await mark_scheduler(pool, clock.now())
    clock.advance(max(30.0, 3 * settings.tick_interval_s) + 1)
    await pool.execute("UPDATE worker_heartbeats SET last_seen = $1", clock.now())
    doc = (await client.get("/health")).json()
    assert doc["components"]["scheduler"]["status"] == "degraded"
    assert doc["status"] == "degraded"


@pytest.fixture
async def dead_db_client(
    settings: Settings, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose database is a unix socket path where nothing listens."""
    bogus = settings.replace(database_url=f"postgresql://postgres@/postgres?host={tmp_path}")
    app = create_app(bogus, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        yield c
    await app.state.deps.close()


async def test_database_down_is_a_fast_503(dead_db_client: httpx.AsyncClient) -> None:
    # A guard against hanging, not a speed measurement (that is bench/'s job).
    async with asyncio.timeout(30):
        await _database_down_answers(dead_db_client)


async def _database_down_answers(dead_db_client: httpx.AsyncClient) -> None:
    r = await dead_db_client.get("/health")
    assert r.status_code == 503
    doc = r.json()
    assert doc["status"] == "unhealthy"
    assert doc["components"]["database"]["status"] == "unhealthy"
    assert doc["components"]["redis"]["status"] == "healthy"
    assert doc["error"]["code"] == "unavailable"
    assert doc["request_id"] == r.headers["x-request-id"]
    assert "postgres" not in doc["components"]["database"].get("error", "").lower()

    r = await dead_db_client.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"
    assert (await dead_db_client.get("/health/live")).status_code == 200
    # Any route that needs the database answers 503, not 500, and does not hang.
    for _ in range(3):
        r = await dead_db_client.get("/agents", headers={"Authorization": "Bearer ord_at_x"})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable"
        assert r.headers["retry-after"]
    r = await dead_db_client.post(
        "/agents/auth/token", json={"agent_id": str(uuid.uuid4()), "agent_secret": "s"}
    )
    assert r.status_code == 503


async def test_redis_down_is_degraded_not_unhealthy(
    settings: Settings, pool: asyncpg.Pool, clock: FrozenClock, tmp_path: Path
) -> None:
    await mark_scheduler(pool, clock.now())
    await mark_worker(pool, clock.now())
    app = create_app(
        settings.replace(redis_url=f"unix://{tmp_path}/missing.sock"), clock=clock, pool=pool
    )
    async with (
        asyncio.timeout(30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c,
    ):
        r = await c.get("/health")
    await app.state.deps.close()
    assert r.status_code == 200
    doc = r.json()
    assert doc["status"] == "degraded"
    assert doc["components"]["redis"]["status"] == "degraded"
    assert doc["components"]["redis"]["outbox_backlog"] == 0
    assert doc["components"]["database"]["status"] == "healthy"


async def test_metrics_use_route_templates(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    agent_id = admin["agent_id"]
    await client.get(f"/agents/{agent_id}", headers=admin["headers"])
    await client.get(f"/agents/{uuid.uuid4()}", headers=admin["headers"])
    await client.get(f"/definitely/not/{uuid.uuid4()}")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert re.search(
        r'ordinaut_http_requests_total\{method="GET",route="/agents/\{agent_id\}",status="200"\} '
        r"[1-9]",
        text,
    )
    assert 'route="/agents/{agent_id}",status="404"' in text
    assert 'route="unmatched",status="404"' in text
    assert "ordinaut_http_request_duration_seconds_bucket" in text
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", text), "ids leaked into metric labels"


async def test_saturated_pool_is_a_quick_503(
    settings: Settings, clock: FrozenClock, admin: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps_module, "POOL_ACQUIRE_TIMEOUT_S", 0.2)
    app = create_app(settings.replace(db_pool_max=1), clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        assert (await c.get("/agents", headers=admin["headers"])).status_code == 200
        own_pool = await app.state.deps.pool()
        held = await own_pool.acquire(timeout=1)
        try:
            # with every connection held, acquire gives up (0.2 s here) instead of hanging
            r = await c.get("/agents", headers=admin["headers"])
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "unavailable"
        finally:
            await own_pool.release(held)
        assert (await c.get("/agents", headers=admin["headers"])).status_code == 200
    await app.state.deps.close()
    assert own_pool.is_closing()


async def test_lazy_pool_is_created_once_and_syncs_the_database_clock(
    settings: Settings, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = []
    real = deps_module._create_pool

    async def counting(s: Settings) -> asyncpg.Pool:
        created.append(s)
        return await real(s)

    monkeypatch.setattr(deps_module, "_create_pool", counting)
    app = create_app(settings)  # no clock: the database's clock
    deps = app.state.deps
    assert isinstance(deps.clock, DatabaseClock)
    assert not deps.clock.synced
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        results = await asyncio.gather(*(c.get("/health/ready") for _ in range(8)))
    assert [r.status_code for r in results] == [200] * 8
    assert len(created) == 1
    assert deps.clock.synced
    db_now = await pool.fetchval("SELECT clock_timestamp()")
    assert abs((deps.clock.now() - db_now).total_seconds()) < 1.0
    await deps.close()


async def test_health_shows_the_ingest_stream_waiting_pending_and_parked(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    from ordinaut import consumer, events

    redis = events.connect_redis(settings)
    streams = (events.INGEST_STREAM, events.DEAD_STREAM)
    try:
        await redis.delete(*streams)
        doc = (await client.get("/health")).json()
        assert doc["components"]["redis"]["ingest"] == {
            "stream_length": 0,
            "pending": 0,
            "consumers": 0,
            "parked": 0,
        }
        for i in range(3):
            await redis.xadd(events.INGEST_STREAM, {"topic": "t", "n": str(i)})
        await consumer.ensure_group(redis)
        await redis.xreadgroup(events.INGEST_GROUP, "c1", {events.INGEST_STREAM: ">"}, count=2)
        await redis.xadd(events.DEAD_STREAM, {"entry_id": "1-1", "error": "bad"})
        ingest = (await client.get("/health")).json()["components"]["redis"]["ingest"]
        assert ingest == {"stream_length": 3, "pending": 2, "consumers": 1, "parked": 1}
    finally:
        await redis.delete(*streams)
        await redis.aclose()
