"""The outcome router's cost (``ordinaut.notifier.route_once``): run outcomes routed per second.

    .venv/bin/python bench/notifier.py [--quick]      # prints JSON

Starts a private PostgreSQL (pgserver wheel) under a temp dir, records N finished runs of one
task the way workers do (materialize, lease, finish: three outbox rows per run), then times
the router over them, in four cases: nobody listens (no task has notify targets or a run.*
listener: the cursor jumps), another task listens (every window is read, nothing is routed:
what a deployment pays per run once anyone uses notifications), the task has one `notify`
target (a delivery row per run), and the owner has an event task on `run.succeeded` (a
lifecycle event and a queued run per run). Deliveries are
not sent: this measures the routing only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT / "bench"))

from run import private_stack  # noqa: E402

from ordinaut import notifier  # noqa: E402
from ordinaut.config import Settings  # noqa: E402
from ordinaut.pipeline import default_registry  # noqa: E402
from ordinaut.slots import idempotency_key  # noqa: E402
from ordinaut.store import agents, db, tasks, work  # noqa: E402
from ordinaut.taskdefs import prepare  # noqa: E402

TASK: dict[str, Any] = {
    "title": "bench",
    "description": "",
    "schedule_kind": "event",
    "schedule_expr": "never.published",
    "timezone": "UTC",
    "payload": {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
    "priority": 5,
    "max_retries": 0,
    "backoff_strategy": "fixed",
    "dedupe_key": None,
    "dedupe_window_seconds": None,
    "concurrency_key": None,
    "misfire_policy": "run_once",
    "overlap_policy": "allow",
}
NOTIFY = [{"url": "https://hooks.example.com/x", "on": ["succeeded"], "secret": "HOOK"}]
CLEAN = "TRUNCATE notifications, events, outbox, due_work, runs, tasks, agents CASCADE"


async def finished_runs(pool: Any, settings: Settings, n: int, case: str) -> None:
    """One task (and, for ``lifecycle``, a listener) with ``n`` succeeded runs."""
    now = datetime.now(UTC)
    registry = default_registry(settings)
    async with pool.acquire() as conn:
        agent, _ = await agents.create_agent(conn, name="bench", scopes=["tasks:write"], now=now)
        body = {**TASK, "payload": {**TASK["payload"]}}
        if case == "notify":
            body["payload"]["notify"] = NOTIFY
        task = await tasks.insert_task(
            conn,
            task_id=uuid.uuid4(),
            owner_id=agent.id,
            task={
                **prepare(body, now=now, settings=settings, registry=registry),
                "status": "active",
                "snoozed_until": None,
            },
            now=now,
        )
        if case == "others_listen":  # another task has notify: no shortcut, nothing to route
            other = {**TASK, "title": "other", "payload": {**TASK["payload"], "notify": NOTIFY}}
            await tasks.insert_task(
                conn,
                task_id=uuid.uuid4(),
                owner_id=agent.id,
                task={
                    **prepare(other, now=now, settings=settings, registry=registry),
                    "status": "active",
                    "snoozed_until": None,
                },
                now=now,
            )
        if case == "lifecycle":
            listener = {**TASK, "schedule_expr": "run.succeeded"}
            await tasks.insert_task(
                conn,
                task_id=uuid.uuid4(),
                owner_id=agent.id,
                task={
                    **prepare(listener, now=now, settings=settings, registry=registry),
                    "status": "active",
                    "snoozed_until": None,
                },
                now=now,
            )
        slots = []
        for i in range(n):
            slot = f"manual:{i}"
            slots.append(
                work.NewSlot(
                    run_id=uuid.uuid4(),
                    task_id=task["id"],
                    owner_id=agent.id,
                    slot=slot,
                    trigger="run_now",
                    event_id=None,
                    scheduled_for=now,
                    run_at=now,
                    priority=5,
                    max_attempts=1,
                    concurrency_key=None,
                    buffer_one=False,
                    idempotency_key=idempotency_key(task["id"], slot),
                )
            )
        for start in range(0, n, 1000):
            await work.materialize(conn, slots[start : start + 1000], now=now)
    while True:
        async with pool.acquire() as conn:
            leased = await work.lease(
                conn, now=datetime.now(UTC), limit=1000, lease_s=60, worker_id="bench"
            )
            if not leased:
                break
            done = [
                work.Outcome(
                    r["run_id"],
                    r["lease_token"],
                    r["attempt"],
                    "succeeded",
                    datetime.now(UTC),
                    1,
                    output={"ok": True},
                )
                for r in leased
            ]
            async with conn.transaction():
                await work.finish(conn, done)


async def route_all(pool: Any, settings: Settings) -> tuple[float, int]:
    started = time.perf_counter()
    moved = 0
    while n := await notifier.route_once(pool, now=datetime.now(UTC), settings=settings):
        moved += n
    return time.perf_counter() - started, moved


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 runs instead of 20,000")
    args = parser.parse_args()
    n = 2_000 if args.quick else 20_000
    results: dict[str, Any] = {"runs": n, "outbox_rows_per_run": 3}
    async with private_stack("ordinaut-bench-outcomes-") as (settings, _):
        settings = settings.replace(max_runs_per_minute_per_agent=0)
        pool = await db.create_pool(settings, min_size=1, max_size=4)
        try:
            for case in ("nobody_listens", "others_listen", "notify", "lifecycle"):
                await pool.execute(CLEAN)
                await finished_runs(pool, settings, n, case)
                seconds, _ = await route_all(pool, settings)
                made = {
                    "deliveries": await pool.fetchval("SELECT count(*) FROM notifications"),
                    "lifecycle_events": await pool.fetchval(
                        "SELECT count(*) FROM events WHERE source = 'lifecycle'"
                    ),
                }
                results[case] = {
                    "seconds": round(seconds, 3),
                    "outcomes_per_s": round(n / seconds),
                    **made,
                }
                print(case, results[case], flush=True)
        finally:
            await pool.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
