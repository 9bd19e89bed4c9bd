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
        real_stop = bench.stop

        def stop(procs: list[subprocess.Popen[bytes]]) -> None:
            seen["workers"] = sum(_ticks(str(p.pid)) for p in procs)
            seen["pg"], seen["redis"] = postgres_ticks(), redis_ticks(base)
            real_stop(procs)

        bench.stop = stop
        for label, s in (
            ("with relay", settings),
            ("without redis", settings.replace(redis_url="")),
        ):
            pg0, redis0, t0 = postgres_ticks(), redis_ticks(base), time.time()
            rate = await bench.bench_throughput(pool, s, 30_000)
            print(
                f"{label:14} {rate:7.0f} runs/s  wall {time.time() - t0:5.1f} s  "
                f"workers {seen['workers'] / 100:5.1f} s  postgres {(seen['pg'] - pg0) / 100:5.1f} s"
                f"  redis {(seen['redis'] - redis0) / 100:4.1f} s",
                flush=True,
            )
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
