"""API benchmark with wrk: Ordinaut side by side with a bare FastAPI app on the same database.

    .venv/bin/python bench/api.py [--seconds 10] [--quick]     (make bench runs it too)
    .venv/bin/python bench/api.py --pages-only                 (the list pages alone, ~5 min)

Starts a private PostgreSQL + Redis (bench/run.py's private_stack), one uvicorn process of
Ordinaut's API (rate limit off) and one of ``bench/bare_api.py`` (same uvicorn settings, same
database, the same statements without Ordinaut's validation, outbox and audit), then drives
each route with wrk (2 threads, 16 connections): ``GET /tasks/{id}``, ``POST /tasks``,
``GET /runs?task_id=``, ``POST /events``. Reports req/s, p99 and the ratio Ordinaut / bare.

Also measured: the cold import of the API Lambda handler (a fresh interpreter each time), and
how costs hold as data grows: create rate with 100k tasks owned by the agent against none,
``GET /tasks`` and ``GET /runs`` first and deep pages with 1M runs stored.

wrk is Debian's package (a C client: the load generator's own CPU stays small). Where it is
missing the wrk parts are skipped with a message; ``make bench`` installs it when it can.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, child_env, free_port, private_stack

from ordinaut.config import Settings
from ordinaut.store import agents, db

TASK_BODY = {
    "title": "bench",
    "schedule_kind": "cron",
    "schedule_expr": "0 8 * * *",
    "timezone": "Europe/Chisinau",
    "payload": {"params": {"n": 1}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
}
EVENT_BODY = {"topic": "bench.ping", "payload": {"n": 1}}
API_ENV = {
    "ORDINAUT_RATE_LIMIT_PER_MINUTE": "1000000000",
    "ORDINAUT_MAX_TASKS_PER_AGENT": "100000000",
    "ORDINAUT_LOG_LEVEL": "WARNING",
}
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk_script(method: str, token: str, body: dict[str, Any] | None) -> str:
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {json.dumps(json.dumps(body))}")
    return "\n".join(lines) + "\n"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str, script: str, seconds: float, connections: int = 16, pid: int | None = None
) -> dict[str, float]:
    """req/s and p99 (ms) of one wrk run; raises when any response was not 2xx. With the
    server's ``pid``: also its CPU time per request (µs), which other work on a shared machine
    barely moves, where req/s falls with every process competing for the cores."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    before = cpu_s(pid) if pid else 0.0
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", f.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(f.name).unlink()
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"{bad.group(1)} non-2xx responses from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert p99, out
    result = {"rps": round(rps, 1), "p99_ms": round(float(p99.group(1)) * UNITS[p99.group(2)], 2)}
    done = re.search(r"(\d+) requests in", out)
    if pid and done and int(done.group(1)):
        result["cpu_us_per_req"] = round((cpu_s(pid) - before) / int(done.group(1)) * 1e6, 1)
    return result


async def wait_up(base: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        for _ in range(300):
            try:
                if (await client.get(path)).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{base} did not come up")


def start_ordinaut(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ordinaut.cli", "api", "--port", str(port)],
        env=child_env(settings, ORDINAUT_API_PORT=str(port), **API_ENV),
        stdout=subprocess.DEVNULL,
    )


def start_bare(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "bare_api:app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=child_env(settings),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


async def token_for(pool: asyncpg.Pool, base: str) -> tuple[uuid.UUID, str]:
    async with pool.acquire() as conn:
        agent, secret = await agents.create_agent(
            conn, name=f"bench-{uuid.uuid4().hex[:6]}", scopes=["admin"], now=datetime.now(UTC)
        )
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        r = await client.post(
            "/agents/auth/token", json={"agent_id": str(agent.id), "agent_secret": secret}
        )
        r.raise_for_status()
    return agent.id, str(r.json()["access_token"])


async def seed_runs(pool: asyncpg.Pool, task_id: str, owner: uuid.UUID, n: int) -> None:
    """``n`` finished runs of one task, inserted by PostgreSQL itself in chunks."""
    for start in range(0, n, 200_000):
        await pool.execute(
            """
            INSERT INTO runs (id, task_id, owner_id, slot, trigger, scheduled_for, status,
                              attempt, idempotency_key, started_at, finished_at, created_at,
                              updated_at)
            SELECT u, $1, $2, 'manual:' || u, 'run_now',
                   now() - g * interval '1 second', 'succeeded', 1, u::text,
                   now() - g * interval '1 second', now() - g * interval '1 second',
                   now() - g * interval '1 second', now() - g * interval '1 second'
            FROM (SELECT g, gen_random_uuid() AS u
                  FROM generate_series($3::bigint, $4::bigint) AS g) AS s
            """,
            uuid.UUID(task_id),
            owner,
            start,
            min(start + 200_000, n) - 1,
            timeout=600,
        )
    await pool.execute("VACUUM ANALYZE runs", timeout=600)
    # write the load's dirty pages out now, not in a checkpoint during the page readings
    await pool.execute("CHECKPOINT", timeout=600)


async def seed_tasks(pool: asyncpg.Pool, owner: uuid.UUID, n: int) -> None:
    await pool.execute(
        """
        INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, timezone,
                           payload, status, created_at, updated_at)
        SELECT gen_random_uuid(), $1, 'seed', 'cron', '0 8 * * *', 'UTC', '{}'::jsonb,
               'paused', now(), now()
        FROM generate_series(1, $2::int)
        """,
        owner,
        n,
        timeout=600,
    )
    await pool.execute("VACUUM ANALYZE tasks", timeout=600)


def cold_import_s(reps: int = 7) -> dict[str, Any]:
    """Seconds to import the API Lambda handler in a fresh interpreter: wall time and the
    process's CPU time (median, min and max of ``reps``). Bytecode is compiled first into a
    private cache, as in the image (pip compiles the package; the Dockerfile compiles
    functions/), so the figure is the import and not the compiler."""
    code = (
        "import time; t, c = time.perf_counter(), time.process_time(); "
        "import functions.api.handler; "
        "print(time.perf_counter() - t, time.process_time() - c)"
    )
    with tempfile.TemporaryDirectory(prefix="ordinaut-pyc-") as cache:
        env = {
            **child_env_min(),
            "PYTHONPATH": f"{ROOT}:{ROOT / 'shared'}",
            "PYTHONPYCACHEPREFIX": cache,
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        walls, cpus = [], []
        for i in range(reps + 1):
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True,
                cwd=ROOT, env=env,
            ).stdout  # fmt: skip
            if i:  # the first run writes the bytecode
                wall, cpu = map(float, out.strip().splitlines()[-1].split())
                walls.append(wall)
                cpus.append(cpu)
    return {
        "median_s": round(statistics.median(walls), 3),
        "min_s": round(min(walls), 3),
        "max_s": round(max(walls), 3),
        "cpu_median_s": round(statistics.median(cpus), 3),
        "cpu_min_s": round(min(cpus), 3),
        "reps": reps,
    }


def child_env_min() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ORDINAUT_")}


def _summary(pairs: list[tuple[dict[str, float], dict[str, float]]]) -> dict[str, Any]:
    """Medians and ranges of alternating (Ordinaut, bare) readings."""
    ratios = [o["rps"] / b["rps"] for o, b in pairs]

    def stat(values: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(values), 2),
            "min": round(min(values), 2),
            "max": round(max(values), 2),
        }

    cpu = [
        (o["cpu_us_per_req"], b["cpu_us_per_req"])
        for o, b in pairs
        if "cpu_us_per_req" in o and "cpu_us_per_req" in b
    ]
    return {
        "ordinaut": {"rps": stat([o["rps"] for o, _ in pairs]),
                     "p99_ms": stat([o["p99_ms"] for o, _ in pairs]),
                     "cpu_us_per_req": stat([c for c, _ in cpu]) if cpu else None},
        "bare": {"rps": stat([b["rps"] for _, b in pairs]),
                 "p99_ms": stat([b["p99_ms"] for _, b in pairs]),
                 "cpu_us_per_req": stat([c for _, c in cpu]) if cpu else None},
        "ratio": stat(ratios),
        # bare's CPU per request over Ordinaut's: the req/s ratio a quiet machine would show
        # if the API process were the bottleneck
        "cpu_ratio": stat([b / c for c, b in cpu]) if cpu else None,
        "readings": [[o["rps"], b["rps"]] for o, b in pairs],
    }  # fmt: skip


async def deep_cursor(base: str, token: str, path: str, depth: int) -> str:
    """The cursor of the page starting ``depth`` items into a listing (read once by offset)."""
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        sep = "&" if "?" in path else "?"
        r = await client.get(
            f"{path}{sep}limit=1&offset={depth - 1}&total=false",
            headers={"Authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
        cursor = r.json()["next_cursor"]
        assert cursor, r.text
        return str(cursor)


async def side_by_side(
    settings: Settings, seconds: float, quick: bool, reps: int, only: list[str] | None = None
) -> dict[str, Any]:
    port_o, port_b = free_port(), free_port()
    procs = [start_ordinaut(settings, port_o), start_bare(settings, port_b)]
    base_o, base_b = f"http://127.0.0.1:{port_o}", f"http://127.0.0.1:{port_b}"
    pool = await db.create_pool(settings, min_size=1, max_size=4)
    try:
        await wait_up(base_o, "/health/live")
        await wait_up(base_b, "/docs")
        owner, token = await token_for(pool, base_o)
        async with httpx.AsyncClient(base_url=base_o, timeout=10) as client:
            h = {"Authorization": f"Bearer {token}"}
            r = await client.post("/tasks", json=TASK_BODY, headers=h)
            r.raise_for_status()
            task_id = r.json()["id"]
        await seed_runs(pool, task_id, owner, 200)
        routes = {
            "GET /tasks/{id}": ("GET", f"/tasks/{task_id}", None),
            "POST /tasks": ("POST", "/tasks", TASK_BODY),
            "GET /runs?task_id=": ("GET", f"/runs?task_id={task_id}", None),
            "POST /events": ("POST", "/events", EVENT_BODY),
        }
        result: dict[str, Any] = {
            "wrk": "2 threads, 16 connections",
            "seconds": seconds,
            "reps": reps,
            "note": "each rep runs Ordinaut then bare back to back; medians and ranges of "
            "the reps (the machine is shared: read the ratio)",
        }
        for name, (method, path, body) in routes.items():
            if only and name not in only:
                continue
            script = wrk_script(method, token, body)
            pairs = [
                (
                    run_wrk(base_o + path, script, seconds, pid=procs[0].pid),
                    run_wrk(base_b + path, script, seconds, pid=procs[1].pid),
                )
                for _ in range(reps)
            ]
            result[name] = _summary(pairs)
            print(
                f"api {name}: ratio {result[name]['ratio']}, cpu ratio {result[name]['cpu_ratio']}",
                flush=True,
            )
        if only:  # a side-by-side reading of the named routes only: no data seeded
            return result

        # flat costs: the create rate of an agent owning many tasks against one owning none,
        # alternately in the same minutes (so the machine's drift hits both alike)
        n_tasks = 10_000 if quick else 100_000
        await seed_tasks(pool, owner, n_tasks)
        _, fresh_token = await token_for(pool, base_o)
        many_script = wrk_script("POST", token, TASK_BODY)
        few_script = wrk_script("POST", fresh_token, TASK_BODY)
        creates = [
            (
                run_wrk(base_o + "/tasks", many_script, seconds),
                run_wrk(base_o + "/tasks", few_script, seconds),
            )
            for _ in range(reps)
        ]
        vs_few = [m["rps"] / f["rps"] for m, f in creates]
        result["create_with_many_tasks"] = {
            "tasks_owned": n_tasks,
            "rps_many": [m["rps"] for m, _ in creates],
            "rps_few": [f["rps"] for _, f in creates],
            "vs_few": {
                "median": round(statistics.median(vs_few), 2),
                "min": round(min(vs_few), 2),
                "max": round(max(vs_few), 2),
            },
        }
        print(f"api create with {n_tasks} tasks: {result['create_with_many_tasks']}", flush=True)

        n_runs = 100_000 if quick else 1_000_000
        await seed_runs(pool, task_id, owner, n_runs)
        result["pages"] = await measure_pages(
            pool, (base_o, procs[0].pid), (base_b, procs[1].pid), token, owner, task_id,
            n_tasks=n_tasks, n_runs=n_runs, seconds=seconds, reps=reps,
        )  # fmt: skip
        return result
    finally:
        await pool.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


# A page of a listing, read by wrk with 4 connections (a person's browser and a script or two,
# not a load test): p99 is the figure, where queueing behind 16 connections would measure the
# machine. Each reading of Ordinaut is followed at once by one of the bare app's GET
# /runs?task_id= (its first page, the same rows), the noise floor of that moment.
PAGE_CONNECTIONS = 4


async def measure_pages(
    pool: asyncpg.Pool,
    ordinaut: tuple[str, int],
    bare: tuple[str, int],
    token: str,
    owner: uuid.UUID,
    task_id: str,
    *,
    n_tasks: int,
    n_runs: int,
    seconds: float,
    reps: int,
) -> dict[str, Any]:
    """``GET /tasks`` and ``GET /runs?task_id=`` first and deep pages (cursor, offset, counted)
    with ``n_runs`` runs of one task and ``n_tasks`` tasks stored (seeded by the caller)."""
    (base_o, pid_o), (base_b, pid_b) = ordinaut, bare
    runs_path = f"/runs?task_id={task_id}"
    total_tasks = int(
        await pool.fetchval("SELECT count(*) FROM tasks WHERE created_by = $1", owner)
    )
    total_runs = int(await pool.fetchval("SELECT count(*) FROM runs"))
    pages = {
        "GET /tasks first page": "/tasks?limit=50&total=false",
        "GET /tasks deep page (cursor)": "/tasks?limit=50&cursor="
        + await deep_cursor(base_o, token, "/tasks", n_tasks - 100),
        "GET /tasks first page, counted": "/tasks?limit=50",
        "GET /tasks deep page (offset)": f"/tasks?limit=50&offset={n_tasks - 100}&total=false",
        "GET /runs first page": f"{runs_path}&limit=50&total=false",
        "GET /runs deep page (cursor)": f"{runs_path}&limit=50&cursor="
        + await deep_cursor(base_o, token, runs_path, n_runs - 100),
        "GET /runs first page, counted": f"{runs_path}&limit=50",
        "GET /runs deep page (offset)": f"{runs_path}&limit=50&offset={n_runs - 100}&total=false",
    }
    script = wrk_script("GET", token, None)
    result: dict[str, Any] = {
        "runs_stored": total_runs,
        "tasks_stored": total_tasks,
        "wrk": f"2 threads, {PAGE_CONNECTIONS} connections",
        "seconds": min(seconds, 5.0),
        "reps": reps,
    }
    for name, path in pages.items():
        readings, floor = [], []
        for _ in range(reps):
            readings.append(
                run_wrk(base_o + path, script, min(seconds, 5.0), PAGE_CONNECTIONS, pid=pid_o)
            )
            floor.append(
                run_wrk(base_b + runs_path, script, min(seconds, 5.0), PAGE_CONNECTIONS, pid=pid_b)
            )
        result[name] = {
            "rps": round(statistics.median(r["rps"] for r in readings), 1),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in readings), 2),
            "p99_ms_range": [min(r["p99_ms"] for r in readings),
                             max(r["p99_ms"] for r in readings)],
            "cpu_us_per_req": round(statistics.median(r["cpu_us_per_req"] for r in readings), 1),
            # the bare app's GET /runs?task_id= right after each reading: how noisy the machine was
            "bare_runs_p99_ms": round(statistics.median(r["p99_ms"] for r in floor), 2),
            "bare_runs_p99_ms_range": [min(r["p99_ms"] for r in floor),
                                       max(r["p99_ms"] for r in floor)],
        }  # fmt: skip
        print(f"api {name}: {result[name]}", flush=True)
    return result


async def pages_only(settings: Settings, seconds: float, quick: bool, reps: int) -> dict[str, Any]:
    """Only the page measurements (``--pages-only``): seed the tasks and runs, read the pages."""
    port_o, port_b = free_port(), free_port()
    procs = [start_ordinaut(settings, port_o), start_bare(settings, port_b)]
    base_o, base_b = f"http://127.0.0.1:{port_o}", f"http://127.0.0.1:{port_b}"
    pool = await db.create_pool(settings, min_size=1, max_size=4)
    try:
        await wait_up(base_o, "/health/live")
        await wait_up(base_b, "/docs")
        owner, token = await token_for(pool, base_o)
        async with httpx.AsyncClient(base_url=base_o, timeout=10) as client:
            r = await client.post(
                "/tasks", json=TASK_BODY, headers={"Authorization": f"Bearer {token}"}
            )
            r.raise_for_status()
            task_id = r.json()["id"]
        n_tasks, n_runs = (10_000, 100_000) if quick else (100_000, 1_000_000)
        t0 = time.perf_counter()
        await seed_tasks(pool, owner, n_tasks)
        await seed_runs(pool, task_id, owner, n_runs)
        print(f"api pages: seeded in {time.perf_counter() - t0:.0f} s", flush=True)
        return await measure_pages(
            pool, (base_o, procs[0].pid), (base_b, procs[1].pid), token, owner, task_id,
            n_tasks=n_tasks, n_runs=n_runs, seconds=seconds, reps=reps,
        )  # fmt: skip
    finally:
        await pool.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


async def bench(
    settings: Settings, seconds: float, quick: bool, reps: int = 3, only: list[str] | None = None
) -> dict[str, Any]:
    """Everything this module measures, as the ``api`` entry of bench/results.json."""
    out: dict[str, Any] = {"cold_import_api_handler": cold_import_s()}
    print(f"api cold import: {out['cold_import_api_handler']}", flush=True)
    if shutil.which("wrk") is None:
        out["skipped"] = "wrk is not installed (apt-get install wrk): wrk measurements skipped"
        print(out["skipped"], flush=True)
        return out
    out.update(await side_by_side(settings, seconds, quick, reps, only))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk duration per route")
    parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    parser.add_argument("--reps", type=int, default=3, help="alternating readings per route")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument(
        "--route",
        action="append",
        help="only this side-by-side route (repeatable), e.g. 'GET /tasks/{id}'; "
        "skips the flat-cost and page measurements",
    )
    parser.add_argument(
        "--pages-only",
        action="store_true",
        help="only the GET /tasks and GET /runs pages with 1M runs and 100k tasks stored "
        "(--quick: 100k and 10k); replaces the pages entry of the results, a few minutes",
    )
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    async with private_stack("ordinaut-bench-api-") as (settings, _):
        t0 = time.perf_counter()
        if args.pages_only:
            if shutil.which("wrk") is None:
                raise SystemExit("wrk is not installed (apt-get install wrk)")
            pages = await pages_only(settings, seconds, args.quick, args.reps)
            pages["bench_s"] = round(time.perf_counter() - t0, 1)
        else:
            api = await bench(settings, seconds, args.quick, args.reps, args.route)
            api["bench_s"] = round(time.perf_counter() - t0, 1)
    path = Path(args.out)
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.pages_only:
        results.setdefault("api", {})["pages"] = pages
    else:
        results["api"] = api
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path} (api)")


if __name__ == "__main__":
    asyncio.run(main())
