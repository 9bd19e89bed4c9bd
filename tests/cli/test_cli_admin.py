"""`ordinaut admin` against the API served on a loopback port: the operator's view and --retry."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from samples import CRON_TASK, FAILING_PAYLOAD

from ordinaut import cli
from ordinaut.client import AsyncOrdinaut
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick
from ordinaut.store import heartbeats

Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def admin_cli(
    capsys: pytest.CaptureFixture[str],
    live_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Run:
    """Runs ``ordinaut admin --url LIVE --token TOKEN ARGS`` on a thread (the command blocks
    while this loop serves the API); returns (exit code, stdout, stderr)."""
    for key in list(os.environ):
        if key.startswith("ORDINAUT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ORDINAUT_HOME", str(tmp_path))

    def main(argv: list[str]) -> int:
        try:
            return cli.main(argv)
        except SystemExit as exc:  # argparse's own exits
            return int(exc.code or 0)

    async def run(token: str, *argv: str) -> tuple[int, str, str]:
        args = ["admin", "--url", live_url, "--token", token, *argv]
        code = await asyncio.to_thread(main, args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_admin_shows_queue_schedulers_workers_and_dead_letters_and_retries_one(
    admin_cli: Run,
    admin: dict[str, Any],
    agent: dict[str, Any],
    sdk: AsyncOrdinaut,
    run_worker: Callable[[], Awaitable[int]],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    failing = await sdk.create_task(
        {**CRON_TASK, "payload": FAILING_PAYLOAD, "max_retries": 1, "backoff_strategy": "fixed"}
    )
    queued = await sdk.run_task_now(failing.id)
    assert await run_worker() == 1
    clock.advance(settings.backoff_base_s + 1)
    assert await run_worker() == 1
    assert (await sdk.get_run(queued.run_id)).status == "dead_letter"
    await tick(pool, settings, clock, name="scheduler@ops")
    await heartbeats.beat(
        pool,
        worker_id="worker-7",
        hostname="box",
        pid=42,
        started_at=clock.now(),
        now=clock.now(),
        in_flight=0,
    )

    code, out, err = await admin_cli(admin["token"])
    assert code == 0, err
    assert "queue        due 0   scheduled 0   running 0" in out
    assert "scheduler@ops" in out
    assert "workers      1 live, 0 runs in flight" in out
    assert "worker-7" in out
    assert "box:42" in out
    assert "dead letters 1 across all agents" in out
    dead_line = next(line for line in out.splitlines() if line.startswith(queued.run_id))
    assert agent["agent_id"] in dead_line
    assert failing.id in dead_line

    code, out, err = await admin_cli(admin["token"], "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["dead_letters"]["total"] == 1
    assert doc["dead_letters"]["items"][0]["owner_id"] == agent["agent_id"]
    assert [s["name"] for s in doc["schedulers"]] == ["scheduler@ops"]

    code, out, err = await admin_cli(admin["token"], "--retry", queued.run_id)
    assert code == 0, err
    assert f"requeued run {queued.run_id} of agent {agent['agent_id']} (attempt 3)" in out
    assert (await sdk.get_run(queued.run_id)).status == "queued"
    code, out, _ = await admin_cli(admin["token"])
    assert "dead letters 0 across all agents" in out
    assert "queue        due 1" in out


async def test_admin_needs_an_admin_and_valid_flags(
    admin_cli: Run, admin: dict[str, Any], agent: dict[str, Any]
) -> None:
    code, _, err = await admin_cli(agent["token"])
    assert code == 4, err
    assert "403" in err
    code, _, err = await admin_cli(admin["token"], "--dead-letters", "0")
    assert code == 2
    assert "--dead-letters" in err
    code, _, err = await admin_cli(admin["token"], "--retry", "not-a-run")
    assert code == 2, err  # the API answers 422 for a malformed run id
