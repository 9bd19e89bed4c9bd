"""The real processes: a task fires on time, again and again; a killed worker's run is rescued."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from support import eventually

pytestmark = pytest.mark.e2e


async def test_one_shot_task_runs_at_its_instant(api: dict[str, Any], processes: Any) -> None:
    processes.start("scheduler", "--metrics-port", "0")
    processes.start("worker", "--metrics-port", "0")
    h = api["headers"]
    async with httpx.AsyncClient(base_url=api["base"], timeout=10) as client:
        at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        r = await client.post(
            "/tasks",
            headers=h,
            json={
                "title": "soon",
                "schedule_kind": "once",
                "schedule_expr": at.isoformat(),
                "payload": {
                    "params": {"n": 1},
                    "pipeline": [{"id": "a", "uses": "echo", "with": {"n": "${params.n}"}}],
                },
            },
        )
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]

        async def succeeded() -> Any:
            runs = (await client.get("/runs", params={"task_id": task_id}, headers=h)).json()
            done = [x for x in runs["items"] if x["status"] == "succeeded"]
            return done[0] if done else None

        run = await eventually(succeeded, 30, "the one-shot run", processes.logs)
        assert run["scheduled_for"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert run["output"] == {"n": 1}
        started = datetime.fromisoformat(run["started_at"])
        assert started >= at  # never early
        task = (await client.get(f"/tasks/{task_id}", headers=h)).json()
        assert task["status"] == "completed"

        # The scheduler ticked and the worker heartbeats: /health sees both.
        health = (await client.get("/health")).json()
        assert health["components"]["scheduler"]["status"] == "healthy", health
        assert health["components"]["workers"]["status"] == "healthy", health


async def test_killed_worker_run_is_rescued_and_succeeds_once(
    api: dict[str, Any], processes: Any
) -> None:
    victim = processes.start("worker", "--metrics-port", "0")
    h = api["headers"]
    async with httpx.AsyncClient(base_url=api["base"], timeout=10) as client:
        r = await client.post(
            "/tasks",
            headers=h,
            json={
                "title": "slow",
                "schedule_kind": "event",
                "schedule_expr": "manual.only",
                "max_retries": 3,
                "backoff_strategy": "fixed",
                "payload": {
                    "params": {},
                    "pipeline": [{"id": "w", "uses": "wait", "with": {"seconds": 2}}],
                },
            },
        )
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]
        run_id = (await client.post(f"/tasks/{task_id}/run_now", headers=h)).json()["run_id"]

        async def running() -> bool:
            run = (await client.get(f"/runs/{run_id}", headers=h)).json()
            return bool(run["status"] == "running")

        await eventually(running, 30, "the run to start", processes.logs)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        processes.start("worker", "--metrics-port", "0")

        async def finished() -> Any:
            run = (await client.get(f"/runs/{run_id}", headers=h)).json()
            return run if run["status"] not in ("queued", "running") else None

        run = await eventually(finished, 60, "the rescued run to finish", processes.logs)
        assert run["status"] == "succeeded"
        assert run["attempt"] == 2  # the killed attempt was rescued with attempt + 1
        runs = (await client.get("/runs", params={"task_id": task_id}, headers=h)).json()
        assert runs["total"] == 1  # one slot, one run record, one success
