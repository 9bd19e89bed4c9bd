"""Ordinaut event benchmarks: events/s accepted by POST /events and by the ingest stream, and
the time from an event to the start of the run it triggers (p50/p99).

    .venv/bin/python bench/events.py [--quick]      # writes bench/events-results.json

Starts a private PostgreSQL (pgserver wheel) and Redis under a temp dir, both on unix sockets,
a real API process on 127.0.0.1 and real worker / events-consumer processes. Every event
matches one event task, so each accepted event also queues one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT / "bench"))

from run import child_env as shared_child_env  # noqa: E402
from run import free_port, private_stack, stop  # noqa: E402

from ordinaut import events  # noqa: E402
from ordinaut.config import Settings  # noqa: E402
from ordinaut.store import agents, db  # noqa: E402

TASK = {
    "title": "on bench events",
    "schedule_kind": "event",
    "schedule_expr": "bench.*",
    "overlap_policy": "allow",
    "max_retries": 0,
    "payload": {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {"ok": True}}]},
}
CLEAN = "TRUNCATE events, outbox, due_work, runs CASCADE"


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """bench/run.py's process environment, without the API's per-client rate limit and the
    per-agent budget of runs queued per minute (one agent publishes every event here)."""
    return shared_child_env(
        settings,
        ORDINAUT_RATE_LIMIT_PER_MINUTE="100000000",
        ORDINAUT_MAX_RUNS_PER_MINUTE_PER_AGENT="0",
        **extra,
    )


def start(settings: Settings, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ordinaut.cli", *args],
        env=child_env(settings, **extra),
        stdout=subprocess.DEVNULL,
    )


def quantiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {"p50": round(q[49], 2), "p99": round(q[98], 2), "n": len(values)}


async def wait_until(pool: asyncpg.Pool, sql: str, target: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while await pool.fetchval(sql) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {sql} to reach {target}")
        await asyncio.sleep(0.05)


class Api:
    """A real API process, an agent that may publish, and its subscribed event task."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.proc = start(settings, "api", "--port", str(self.port))
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers: dict[str, str] = {}
        self.tenant = ""

    async def ready(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            agent, secret = await agents.create_agent(
                conn, name="bench-events", scopes=["admin"], now=datetime.now(UTC)
            )
        self.tenant = str(agent.id)
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            for _ in range(300):
                try:
                    if (await client.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            body = {"agent_id": self.tenant, "agent_secret": secret}
            token = (await client.post("/agents/auth/token", json=body)).json()["access_token"]
            self.headers = {"Authorization": f"Bearer {token}"}
            r = await client.post("/tasks", json=TASK, headers=self.headers)
            assert r.status_code == 201, r.text

    def close(self) -> None:
        stop([self.proc])


async def bench_post(api: Api, pool: asyncpg.Pool, seconds: float, clients: int) -> float:
    """Events/s accepted (202, stored, run queued) by POST /events from concurrent clients."""
    await pool.execute(CLEAN)
    count = 0
    async with httpx.AsyncClient(base_url=api.base, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def one() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                body = {
                    "topic": "bench.post",
                    "payload": {"n": count},
                    "event_id": uuid.uuid4().hex,
                }
                r = await client.post("/events", json=body, headers=api.headers)
                assert r.status_code == 202, r.text
                assert r.json()["runs_queued"] == 1, r.text
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    assert await pool.fetchval("SELECT count(*) FROM events") == count
    return count / elapsed


async def bench_baseline(api: Api, seconds: float, clients: int) -> float:
    """Requests/s of GET /health/live (no I/O) from the same client: the ceiling one API
    process and this client reach on this machine, to read POST /events against."""
    count = 0
    async with httpx.AsyncClient(base_url=api.base, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def one() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                assert (await client.get("/health/live")).status_code == 200
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        return count / (time.perf_counter() - t0)


async def bench_stream(
    settings: Settings, api: Api, pool: asyncpg.Pool, n: int, consumers: int
) -> float:
    """Events/s stored from the ingest stream by ``consumers`` events-consumer processes."""
    await pool.execute(CLEAN)
    redis = events.connect_redis(settings)
    try:
        await redis.delete(events.INGEST_STREAM)
        payload = orjson.dumps({"n": 1}).decode()
        for chunk in range(0, n, 1000):
            pipe = redis.pipeline(transaction=False)
            for _ in range(min(1000, n - chunk)):
                pipe.xadd(
                    events.INGEST_STREAM,
                    {"tenant_id": api.tenant, "topic": "bench.stream", "payload": payload},
                )
            await pipe.execute()
    finally:
        await redis.aclose()
    t0 = time.perf_counter()
    procs = [start(settings, "events-consumer") for _ in range(consumers)]
    try:
        await wait_until(pool, "SELECT count(*) FROM events", n, 600)
    finally:
        stop(procs)
    # from the first event stored to the last: process start-up is not ingest time
    span = await pool.fetchval(
        "SELECT extract(epoch FROM max(received_at) - min(received_at)) FROM events"
    )
    return n / float(span or (time.perf_counter() - t0))


async def bench_latency(
    settings: Settings, api: Api, pool: asyncpg.Pool, rate: float, seconds: float
) -> dict[str, Any]:
    """Event -> run start, with two worker processes running (they also consume the stream).

    POST /events: from the event's received_at (the API's reading of the database clock) to
    the run's started_at. Stream: from the entry's id (Redis's clock, in ms) to started_at;
    both servers run on this machine's clock.
    """
    await pool.execute(CLEAN)
    workers = [start(settings, "worker", "--metrics-port", "0") for _ in range(2)]
    redis = events.connect_redis(settings)
    n = int(rate * seconds)
    try:
        await asyncio.sleep(3.0)  # workers up, idle, their consumer groups reading
        async with httpx.AsyncClient(base_url=api.base, timeout=30) as client:
            t0 = time.perf_counter()
            sends = []
            for i in range(n):
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
                body = {"topic": "bench.latency", "event_id": f"api-{i}"}
                sends.append(
                    asyncio.create_task(client.post("/events", json=body, headers=api.headers))
                )
            await asyncio.gather(*sends)
        await wait_until(pool, "SELECT count(*) FROM runs WHERE started_at IS NOT NULL", n, 120)
        api_lag = [
            float(r[0]) * 1000.0
            for r in await pool.fetch(
                "SELECT extract(epoch FROM r.started_at - e.received_at) FROM runs r "
                "JOIN events e ON e.tenant_id = r.owner_id AND e.event_id = r.event_id"
            )
        ]
        await pool.execute(CLEAN)
        t0 = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            await redis.xadd(
                events.INGEST_STREAM,
                {"tenant_id": api.tenant, "topic": "bench.latency", "event_id": f"s-{i}"},
            )
        await wait_until(pool, "SELECT count(*) FROM runs WHERE started_at IS NOT NULL", n, 120)
        stream_lag = []
        entries = await redis.xrange(events.INGEST_STREAM)  # entry id = Redis time of XADD
        added = {
            f[b"event_id"].decode(): int(entry_id.split(b"-")[0]) / 1000.0
            for entry_id, f in entries
            if b"event_id" in f and f[b"event_id"].startswith(b"s-")
        }
        for r in await pool.fetch(
            "SELECT event_id, extract(epoch FROM started_at) AS started FROM runs"
        ):
            if r["event_id"] in added:
                stream_lag.append((float(r["started"]) - added[r["event_id"]]) * 1000.0)
    finally:
        await redis.aclose()
        stop(workers)
    return {
        "rate_per_s": rate,
        "post_events_ms": quantiles(api_lag),
        "ingest_stream_ms": quantiles(stream_lag),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", default=str(ROOT / "bench" / "events-results.json"))
    args = parser.parse_args()
    api: Api | None = None
    async with private_stack("ordinaut-bench-events-") as (settings, _):
        try:
            pool = await db.create_pool(settings, min_size=1, max_size=4)
            api = Api(settings)
            await api.ready(pool)
            results: dict[str, Any] = {
                "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": "python bench/events.py" + (" --quick" if args.quick else ""),
                "note": "each event matches one event task, so each accepted event queues one run",
            }
            seconds = 3.0 if args.quick else 10.0
            results["post_events_per_s"] = round(await bench_post(api, pool, seconds, 16), 1)
            print("POST /events accepted/s", results["post_events_per_s"], flush=True)
            results["health_live_per_s"] = round(await bench_baseline(api, seconds, 16), 1)
            print("GET /health/live (ceiling of the API process)", results["health_live_per_s"])
            n = 2_000 if args.quick else 20_000
            results["ingest_stream_per_s"] = {
                f"{c}_consumer{'s' if c > 1 else ''}": round(
                    await bench_stream(settings, api, pool, n, c), 1
                )
                for c in (1, 2)
            }
            print("ingest stream stored/s", results["ingest_stream_per_s"], flush=True)
            results["event_to_run_start"] = await bench_latency(
                settings, api, pool, 100.0, 3.0 if args.quick else 10.0
            )
            print("event -> run start", results["event_to_run_start"], flush=True)
            await pool.close()
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
            print(f"wrote {args.out}")
        finally:
            if api is not None:
                api.close()


if __name__ == "__main__":
    asyncio.run(main())
