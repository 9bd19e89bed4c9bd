"""Health and metrics; no authentication (``/metrics`` is kept off the public host).

``/health/live``: the process answers. ``/health/ready``: the database answers. ``/health``:
every component. PostgreSQL down is *unhealthy* (503): nothing durable can happen. Redis down,
a stale scheduler or no live workers is *degraded* (200): the outbox buffers events and due
work waits in the database, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ordinaut.api.deps import Deps, deps_of, id_of, now_of
from ordinaut.api.schemas import Health, Live, Ready, Unhealthy
from ordinaut.api.strict import JSONRoute
from ordinaut.events import DEAD_STREAM, INGEST_GROUP, INGEST_STREAM
from ordinaut.metrics import REGISTRY
from ordinaut.store import heartbeats

router = APIRouter(tags=["operations"], route_class=JSONRoute)

DB_TIMEOUT_S = 2.0
REDIS_TIMEOUT_S = 1.0
OUTBOX_BACKLOG_CAP = heartbeats.OUTBOX_BACKLOG_CAP
HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN = "healthy", "degraded", "unhealthy", "unknown"


def _dumps(doc: dict[str, Any]) -> bytes:
    # UTC instants as "...Z", like every other response.
    return orjson.dumps(doc, option=orjson.OPT_UTC_Z)


def _json(doc: dict[str, Any]) -> Response:
    return Response(_dumps(doc), media_type="application/json")


def _unavailable(doc: dict[str, Any], rid: str, message: str) -> Response:
    """A 503 that is both the health document and the uniform error envelope."""
    doc["error"] = {"code": "unavailable", "message": message, "details": None}
    doc["request_id"] = rid
    return Response(
        _dumps(doc),
        status_code=503,
        media_type="application/json",
        headers={"Retry-After": "5"},
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _database(deps: Deps, now: datetime) -> dict[str, Any]:
    started = time.perf_counter()
    window = heartbeats.LIVE_HEARTBEATS * deps.settings.heartbeat_s
    try:
        async with asyncio.timeout(DB_TIMEOUT_S):
            pool = await deps.pool()
            async with pool.acquire(timeout=DB_TIMEOUT_S) as conn:
                await heartbeats.ping(conn)
                latency = _ms(started)
                row = await heartbeats.liveness(
                    conn, since=now - timedelta(seconds=window), backlog_cap=OUTBOX_BACKLOG_CAP
                )
    except Exception as exc:  # any failure to answer is the finding, not a 500
        return {"status": UNHEALTHY, "latency_ms": _ms(started), "error": type(exc).__name__}
    return {
        "status": HEALTHY,
        "latency_ms": latency,
        "last_tick_at": row["last_tick_at"],
        "live_workers": row["live_workers"],
        "outbox_backlog": row["outbox_backlog"],
        "worker_window_s": window,
    }


async def _redis(deps: Deps) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            client = await deps.redis()
            await client.ping()
            latency = _ms(started)
            ingest = await _ingest(client)
    except Exception as exc:  # Redis down is a degraded state, never an error response
        return {"status": DEGRADED, "latency_ms": _ms(started), "error": type(exc).__name__}
    return {"status": HEALTHY, "latency_ms": latency, "ingest": ingest}


async def _ingest(client: Any) -> dict[str, Any]:
    """The ingest stream as an operator watches it: entries waiting, entries handed to a
    consumer and not yet acknowledged, entries parked in the dead stream."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(INGEST_STREAM)
    pipe.xinfo_groups(INGEST_STREAM)
    pipe.xlen(DEAD_STREAM)
    length, groups, parked = await pipe.execute(raise_on_error=False)
    if isinstance(groups, Exception):  # no stream yet: nothing was ever published
        groups = []
    group = next((g for g in groups if _text(g.get("name")) == INGEST_GROUP), None)
    return {
        "stream_length": length if isinstance(length, int) else 0,
        "pending": int(group["pending"]) if group else 0,
        "consumers": int(group["consumers"]) if group else 0,
        "parked": parked if isinstance(parked, int) else 0,
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _scheduler(deps: Deps, now: datetime, last_tick_at: datetime | None) -> dict[str, Any]:
    stale_after = max(30.0, 3 * deps.settings.tick_interval_s)
    if last_tick_at is None:
        return {"status": UNKNOWN, "last_tick_at": None, "stale_after_s": stale_after}
    age = max(0.0, (now - last_tick_at).total_seconds())
    return {
        "status": HEALTHY if age <= stale_after else DEGRADED,
        "last_tick_at": last_tick_at,
        "age_s": round(age, 3),
        "stale_after_s": stale_after,
    }


def _unhealthy(text: str) -> dict[int | str, dict[str, Any]]:
    return {
        503: {
            "model": Unhealthy,
            "description": text,
            "headers": {"Retry-After": {"description": "Seconds.", "schema": {"type": "integer"}}},
        }
    }


@router.get("/health/live", response_model=Live)
async def live() -> Response:
    """The process is up (no I/O)."""
    return _json({"status": "ok"})


@router.get(
    "/health/ready",
    response_model=Ready,
    responses=_unhealthy("The database did not answer within two seconds."),
)
async def ready(request: Request) -> Response:
    """Ready when the database answers ``SELECT 1`` within two seconds."""
    database = await _database(deps_of(request), now_of(request))
    if database["status"] != HEALTHY:
        doc = {"status": "unavailable", "database": database}
        return _unavailable(doc, id_of(request), "database unavailable")
    return _json({"status": "ready", "database_latency_ms": database["latency_ms"]})


@router.get(
    "/health",
    response_model=Health,
    responses=_unhealthy("Unhealthy: the database cannot be reached."),
)
async def health(request: Request) -> Response:
    """Every component; 503 only when unhealthy (the database is unreachable)."""
    deps = deps_of(request)
    now = now_of(request)
    database, redis = await asyncio.gather(_database(deps, now), _redis(deps))
    if database["status"] == HEALTHY:
        redis["outbox_backlog"] = database.pop("outbox_backlog")
        redis["outbox_backlog_capped"] = redis["outbox_backlog"] >= OUTBOX_BACKLOG_CAP
        scheduler = _scheduler(deps, now, database.pop("last_tick_at"))
        live_workers = database.pop("live_workers")
        workers = {
            "status": HEALTHY if live_workers > 0 else DEGRADED,
            "live": live_workers,
            "window_s": database.pop("worker_window_s"),
        }
    else:
        redis["outbox_backlog"] = None
        scheduler = {"status": UNKNOWN}
        workers = {"status": UNKNOWN}
    components = {"database": database, "redis": redis, "scheduler": scheduler, "workers": workers}
    if database["status"] != HEALTHY:
        status = UNHEALTHY
    elif all(c["status"] == HEALTHY for c in components.values()):
        status = HEALTHY
    else:
        status = DEGRADED
    doc: dict[str, Any] = {"status": status, "checked_at": now, "components": components}
    if status == UNHEALTHY:
        return _unavailable(doc, id_of(request), "database unavailable")
    return _json(doc)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
