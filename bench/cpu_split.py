"""Where the no-op throughput goes: the same drain as `make bench`, with and without the
outbox relay to Redis, and the CPU each side used (read from /proc).

    .venv/bin/python bench/cpu_split.py
"""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench

from ordinaut.store import db


def _ticks(pid: str) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def postgres_ticks() -> int:
    """CPU ticks of every live process of the pgserver user (the embedded server runs as it)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name == "pgserver":
                total += _ticks(pid)
        except (OSError, KeyError):
            continue
    return total


def redis_ticks(base: Path) -> int:
    pids = subprocess.run(
        ["pgrep", "-f", f"{base}/redis"], capture_output=True, text=True
    ).stdout.split()
    total = 0
    for pid in pids:
        try:
            total += _ticks(pid)
        except OSError:
            continue
    return total


async def main() -> None:
    async with bench.private_stack("ordinaut-cpu-") as (settings, base):
        pool = await db.create_pool(settings, min_size=2, max_size=4)
        seen: dict[str, int] = {}
        real_start, real_stop = bench.start_workers, bench.stop

        def start(*args: Any, **kwargs: Any) -> list[subprocess.Popen[bytes]]:
            # from here on the servers' CPU is the drain's (the backlog is already inserted)
            seen["pg0"], seen["redis0"] = postgres_ticks(), redis_ticks(base)
            seen["t0"] = time.time()
            return real_start(*args, **kwargs)

        def stop(procs: list[subprocess.Popen[bytes]]) -> None:
            seen["wall"] = time.time() - seen["t0"]
            seen["workers"] = sum(_ticks(str(p.pid)) for p in procs)
            seen["pg"], seen["redis"] = postgres_ticks(), redis_ticks(base)
            real_stop(procs)

        bench.start_workers, bench.stop = start, stop
        n = 30_000
        print("CPU per run (µs), from worker start to the queue's end; workers include start-up")
        for label, s in (
            ("with relay", settings),
            ("without redis", settings.replace(redis_url="")),
        ):
            rate = await bench.bench_throughput(pool, s, n)
            us = {
                "workers": seen["workers"] / 100 / n * 1e6,
                "postgres": (seen["pg"] - seen["pg0"]) / 100 / n * 1e6,
                "redis": (seen["redis"] - seen["redis0"]) / 100 / n * 1e6,
            }
            print(
                f"{label:14} {rate:7.0f} runs/s  wall {seen['wall']:5.1f} s  "
                + "  ".join(f"{k} {v:4.0f}" for k, v in us.items())
                + f"  total {sum(us.values()):4.0f}",
                flush=True,
            )
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
