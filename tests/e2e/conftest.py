"""End-to-end fixtures: a database of their own and real `ordinaut` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import fresh_database

from ordinaut.config import load_settings
from ordinaut.store import agents, db

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Starts `ordinaut` subcommands against the e2e database and stops them all at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{args[0]}-{len(self.procs)}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ordinaut.cli", *args],
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def logs(self) -> str:
        return "\n".join(f"== {f.name}\n{f.read_text()[-3000:]}" for f in self.log_dir.iterdir())


@pytest.fixture(scope="session")
async def e2e_database(servers: dict[str, str], migrated: str) -> str:
    """A separate database so the processes never race the truncating fixtures."""
    return await fresh_database(servers["database_url"], "ordinaut_e2e")


@pytest.fixture
def processes(e2e_database: str, servers: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    env = dict(os.environ)
    env.update(
        ORDINAUT_DATABASE_URL=e2e_database,
        ORDINAUT_REDIS_URL=servers["redis_url"],
        ORDINAUT_LOG_JSON="true",
        ORDINAUT_TICK_INTERVAL_S="1",
        ORDINAUT_LOOKAHEAD_S="5",
        ORDINAUT_HEARTBEAT_S="0.5",
        ORDINAUT_LEASE_SECONDS="3",
        ORDINAUT_RESCUE_INTERVAL_S="0.5",
        ORDINAUT_POLL_INTERVAL_S="0.5",
    )
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
async def api(processes: Processes, e2e_database: str) -> dict[str, Any]:
    """A real API process and an admin token for it."""
    port = free_port()
    processes.start("api", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    settings = load_settings({}, database_url=e2e_database)
    conn = await db.connect(settings)
    try:
        agent, secret = await agents.create_agent(
            conn, name="e2e", scopes=["admin"], now=datetime.now(UTC)
        )
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                if (await client.get("/health/live")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("API did not start:\n" + processes.logs())
            await _sleep(0.1)
        r = await client.post(
            "/agents/auth/token", json={"agent_id": str(agent.id), "agent_secret": secret}
        )
        token = r.json()["access_token"]
    return {"base": base, "headers": {"Authorization": f"Bearer {token}"}}


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)
