"""Each example in examples/, run as a user runs it (one command) against real `ordinaut api`,
`scheduler` and `worker` processes; the stub services listen on 127.0.0.1 only.

The worker gets ``ORDINAUT_EGRESS_ALLOWLIST`` for the stub ports, as the examples tell the
operator to set; on any other port the morning briefing must fail and say exactly that.

One set of processes serves the whole module. The condition example waits for its task's
first poll on the minute, so it starts in the background as soon as the processes are up and
the other examples run meanwhile; its test, last in the file, collects the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fixtures.processes import Processes
from support import free_port, fresh_database

from ordinaut.config import load_settings
from ordinaut.secrets import new_key
from ordinaut.store import agents, db

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SCRIPT_TIMEOUT_S = 60
# The condition example's first poll comes at the next full minute.
CONDITION_TIMEOUT_S = 80


@dataclass
class Stack:
    base: str
    admin: dict[str, str]  # Authorization header
    credentials: Path  # shaped like the file `make dev` saves
    stub_ports: tuple[int, int]  # allowlisted: the briefing's, the condition example's
    processes: Any
    condition: asyncio.Task[tuple[int, str, str]] | None = None
    condition_refused: asyncio.Task[tuple[int, str, str]] | None = None
    refused_port: int = 0
    condition_unavailable: str = ""
    notify_port: int = 0


async def run_example(
    name: str, *args: str, timeout_s: float = SCRIPT_TIMEOUT_S
) -> tuple[int, str, str]:
    """``python examples/<name>/run.py ARGS``: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name / "run.py"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(EXAMPLES),  # no .ordinaut/ here: the credentials come from the arguments
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    finally:
        if proc.returncode is None:  # timed out or cancelled
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
async def examples_database(servers: dict[str, str], migrated: str) -> str:
    return await fresh_database(servers["database_url"], "ordinaut_examples")


@pytest.fixture(scope="module")
async def stack(
    examples_database: str, servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """API, scheduler and worker (the tests/e2e settings), an agent for the examples with a
    credentials file whose saved token is stale (so the examples exchange the secret, as
    documented), and the condition example already running in the background."""
    home = tmp_path_factory.mktemp("examples")
    env = {
        **os.environ,
        "ORDINAUT_DATABASE_URL": examples_database,
        "ORDINAUT_REDIS_URL": servers["redis_url"],
        "ORDINAUT_LOG_JSON": "true",
        "ORDINAUT_TICK_INTERVAL_S": "1",
        "ORDINAUT_LOOKAHEAD_S": "5",
        "ORDINAUT_HEARTBEAT_S": "0.5",
        "ORDINAUT_LEASE_SECONDS": "3",
        "ORDINAUT_RESCUE_INTERVAL_S": "0.5",
        "ORDINAUT_POLL_INTERVAL_S": "0.5",
        "ORDINAUT_BACKOFF_BASE_S": "0.1",
        "ORDINAUT_SECRETS_KEY": new_key(),  # the notify example signs with a stored secret
    }
    processes = Processes(env, home)
    stub_ports = (free_port(), free_port())
    notify_port = free_port()
    allow = ",".join(f"127.0.0.1:{p}" for p in (*stub_ports, notify_port))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    found: Stack | None = None
    try:
        # the API checks a notify URL when the task is written: it needs the opt-in too
        processes.start("api", "--port", str(port), ORDINAUT_EGRESS_ALLOWLIST=allow)
        processes.start("scheduler", "--metrics-port", "0")
        processes.start("worker", "--metrics-port", "0", ORDINAUT_EGRESS_ALLOWLIST=allow)
        conn = await db.connect(load_settings({}, database_url=examples_database))
        try:
            now = datetime.now(UTC)
            admin, admin_secret = await agents.create_agent(
                conn, name="admin", scopes=["admin"], now=now
            )
            scopes = ["tasks:read", "tasks:write", "runs:read", "events:publish"]
            agent, secret = await agents.create_agent(conn, name="examples", scopes=scopes, now=now)
        finally:
            await conn.close()
        credentials = home / "credentials.json"
        credentials.write_text(
            json.dumps(
                {
                    "url": base,
                    "agent_id": str(agent.id),
                    "agent_secret": secret,
                    "token": "ord_at_long-expired",
                }
            )
        )
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await http.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "API did not start:\n" + processes.logs()
                await asyncio.sleep(0.1)
            r = await http.post(
                "/agents/auth/token",
                json={"agent_id": str(admin.id), "agent_secret": admin_secret},
            )
            admin_headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            body = yaml.safe_load((EXAMPLES / "condition/task.yaml").read_text())
            probe = await http.post("/tasks/validate", headers=admin_headers, json={"task": body})
        found = Stack(base, admin_headers, credentials, stub_ports, processes)
        found.notify_port = notify_port
        if probe.status_code == 422:
            error = probe.json()["error"]
            problems = "; ".join(
                f"{d.get('field')}: {d.get('message')}" for d in error.get("details") or []
            )
            found.condition_unavailable = f"422 {error['code']}: {problems}"
        else:
            assert probe.status_code == 200, probe.text
            # Start below the threshold so that the first poll fires (a task never checked
            # counts as false) instead of waiting a further minute for a second one.
            found.condition = asyncio.create_task(
                run_example(
                    "condition",
                    *("--credentials", str(credentials), "--stub-port", str(stub_ports[1])),
                    *("--start-price", "95", "--timeout", str(CONDITION_TIMEOUT_S - 5)),
                    timeout_s=CONDITION_TIMEOUT_S,
                )
            )
            # The same on a port the operator did not allow: every check fails.
            found.refused_port = free_port()
            found.condition_refused = asyncio.create_task(
                run_example(
                    "condition",
                    *("--credentials", str(credentials)),
                    *("--stub-port", str(found.refused_port)),
                    *("--timeout", str(CONDITION_TIMEOUT_S - 5)),
                    timeout_s=CONDITION_TIMEOUT_S,
                )
            )
        yield found
    finally:
        for background in (found.condition, found.condition_refused) if found else ():
            if background is not None and not background.done():
                background.cancel()
                await asyncio.gather(background, return_exceptions=True)
        processes.stop_all()


async def test_morning_briefing_delivers_the_summary_through_the_stubs(stack: Stack) -> None:
    common = ["--credentials", str(stack.credentials), "--timeout", "20"]

    # Stubs on a port the operator did not allow: the run fails and the script says what to set.
    refused = free_port()
    code, out, err = await run_example("morning_briefing", *common, "--stub-port", str(refused))
    assert code == 1, out + err + stack.processes.logs()
    assert "egress_refused" in out
    assert f"ORDINAUT_EGRESS_ALLOWLIST=127.0.0.1:{refused} make dev" in err
    assert "make dev ARGS=--allow-loopback-egress" in err

    allowed = str(stack.stub_ports[0])
    code, out, err = await run_example("morning_briefing", *common, "--stub-port", allowed)
    assert code == 0, out + err + stack.processes.logs()
    assert "cron '0 8 * * 1-5' in Europe/Chisinau; next:" in out
    for step in ("calendar [http.request]", "weather [http.request]", "summary [transform]"):
        assert f"step {step}: succeeded" in out
    assert "to ana@example.com: Your morning briefing" in out
    assert (
        "Good morning, Ana! 3 events today: 09:30 Stand-up; 12:00 Lunch with Dan; 16:00 Dentist. "
        "Weather in Chisinau: light rain, 7-14 C. Take an umbrella."
    ) in out
    assert "deleted task" in out


async def test_webhook_events_run_the_task_once_each(stack: Stack) -> None:
    code, out, err = await run_example("webhook", "--credentials", str(stack.credentials))
    assert code == 0, out + err + stack.processes.logs()
    lines = [line for line in out.splitlines() if line.startswith("POST /events")]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "duplicate=False, runs queued=1",
        "duplicate=False, runs queued=1",
        "duplicate=True, runs queued=0",  # a redelivered webhook runs nothing
    ]
    assert "announced: billing 2.4.1 to production: succeeded (by ana)" in out
    assert "step page_oncall [echo]: skipped" in out  # only the failed deploy pages
    assert (
        "paged dan@example.com: Deploy failed: search 1.9.0 to production: failed (by dan)" in out
    )
    assert out.count("succeeded (attempt 1") == 2


async def test_notify_receiver_verifies_each_outcome_and_refuses_a_forgery(
    stack: Stack,
) -> None:
    code, out, err = await run_example(
        "notify",
        *("--credentials", str(stack.credentials), "--receiver-port", str(stack.notify_port)),
        *("--timeout", "30"),
    )
    assert code == 0, out + err + stack.processes.logs()
    assert "the receiver verified: run.dead_letter, run.succeeded" in out
    assert "delivered after 1 attempt(s), last answer 200" in out
    assert "a forged notification (wrong signature): the receiver answered 401" in out
    assert "rejected a request: bad or missing Ordinaut-Signature" in out

    # On a port the operator did not open, the task is refused when written, and the
    # script says what to set.
    refused = free_port()
    code, out, err = await run_example(
        "notify", "--credentials", str(stack.credentials), "--receiver-port", str(refused)
    )
    assert code == 1, out + err
    assert "payload.notify[0].url" in err
    assert "--allow-loopback-egress" in err


async def test_foreach_checks_each_invoice_and_publishes_one_reminder_per_overdue_one(
    stack: Stack,
) -> None:
    code, out, err = await run_example("foreach", "--credentials", str(stack.credentials))
    assert code == 0, out + err + stack.processes.logs()
    assert "step check [transform]: failed" in out  # one item failed; the run went on
    checked = [
        line.strip()
        for line in out.splitlines()
        if line.startswith("  [") and line.split()[1].startswith("INV-")
    ]
    assert [line.split(" ", 3)[:3] for line in checked] == [
        ["[0]", "INV-101", "succeeded:"],
        ["[1]", "INV-102", "succeeded:"],
        ["[2]", "INV-103", "failed:"],
        ["[3]", "INV-104", "succeeded:"],
    ]
    assert "diff_seconds(): 'someday' is not an ISO 8601 time" in out
    assert "[0] to ana@example.com: Dear Ana, invoice INV-101 (120.5 EUR) is " in out
    assert "[1] to eva@example.com: Dear Eva, invoice INV-104 (300 EUR) is " in out
    assert "summary: 2 reminder(s) published; 1 invoice(s) could not be checked" in out
    assert "dan@example.com" not in out.split("published on reminders.invoice:")[1]


async def test_condition_task_alerts_once_the_price_drops(stack: Stack) -> None:
    if stack.condition is None:
        pytest.skip(
            "condition tasks are not available in this server yet (POST /tasks/validate "
            f"answered {stack.condition_unavailable})"
        )
    code, out, err = await stack.condition
    assert code == 0, out + err + stack.processes.logs()
    assert "step quote [http.request]: succeeded" in out
    assert "step alert [http.request]: succeeded" in out
    assert '"fired": true' in out
    assert "The inbox received: ACME is below 100: ACME trades at 95.0." in out
    assert "deleted task" in out


async def test_condition_example_stops_at_a_failed_check_and_says_why(stack: Stack) -> None:
    """Every check fails on the egress guard: the script says so at the first failed check
    (not "no alert" after its whole timeout), with the same hint as the morning briefing."""
    if stack.condition_refused is None:
        pytest.skip(f"condition tasks are not available ({stack.condition_unavailable})")
    code, out, err = await stack.condition_refused
    assert code == 1, out + err + stack.processes.logs()
    assert "a check of the price failed" in err
    assert "step quote [http.request]: failed" in out
    assert "egress_refused" in out
    assert f"ORDINAUT_EGRESS_ALLOWLIST=127.0.0.1:{stack.refused_port} make dev" in err
    assert "make dev ARGS=--allow-loopback-egress" in err
    assert "no alert within" not in err
    assert "deleted task" in out
