"""``ordinaut api | scheduler | worker | relay | events-consumer``: the service's long-running
processes, each stopped cleanly by SIGINT or SIGTERM (exit 0).

The server code (uvicorn and the app, the scheduler, the worker, Redis) is imported by the
command that runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ordinaut.cli.common import (
    EXIT_OK,
    CommandError,
    SubParsers,
    count,
    database_errors,
    port_number,
    prepare,
    require_redis,
    subparser,
)
from ordinaut.config import Settings

# --- running until a signal --------------------------------------------------------------------


async def run_until_signalled(body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``body(stop)``; the first SIGINT/SIGTERM sets ``stop``, a second one cancels it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.ensure_future(body(stop))

    def on_signal() -> None:
        if stop.is_set():
            task.cancel()
        else:
            stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        await task
    except asyncio.CancelledError:
        raise CommandError("stopped by a second signal before shutdown finished") from None
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    if port == 0:
        return
    from ordinaut import metrics

    try:
        metrics.serve(port, host)
    except OSError as exc:
        raise CommandError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; "
            "choose another --metrics-port, or 0 to disable"
        ) from None


def run_loop(
    settings: Settings, metrics_port: int, body: Callable[[asyncio.Event], Awaitable[None]]
) -> int:
    """Drive a long-running loop (scheduler, worker) with metrics until a signal stops it."""

    async def main() -> None:
        serve_metrics(metrics_port, settings.metrics_host)
        tune_gc()
        await run_until_signalled(body)

    with database_errors(settings):
        run_async(main())
    return EXIT_OK


def tune_gc() -> None:
    """Collect cyclic garbage less eagerly in a long-running process (worker, scheduler, API).

    A worker allocates many short-lived objects per run (records, step results, futures);
    with the default thresholds the collector kept re-scanning everything that survived
    start-up (modules, the tool registry, compiled pipelines) and took ~9 % of a worker's CPU
    under load. Start-up objects are frozen out of collection, and the young generation is
    collected every 50,000 allocations instead of 700: cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run on uvloop when it is installed (it is, with uvicorn[standard]): the worker's
    hot path is asyncpg round trips, which uvloop makes cheaper."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(coro)
    else:
        uvloop.run(coro)


# --- the commands ------------------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    settings = prepare(args)
    import uvicorn

    from ordinaut.api.app import create_app

    app = create_app(settings)
    # The app's start-up objects (routes, schemas, validators) are most of the heap: with the
    # default thresholds every full collection walked them again, a 40-200 ms pause of every
    # request in flight every few seconds under load (bench/README.md, list pages).
    tune_gc()
    # access_log=False: the request middleware writes the access line (route template,
    # status, duration, request id); uvicorn's own is silenced (logs.py) but still built its
    # arguments (the client address, the quoted path) for every response.
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it caught once it has shut down. With these handlers in place
    # that re-raise lands here, so a clean SIGTERM/SIGINT shutdown exits 0 instead of dying by
    # the signal (or with a KeyboardInterrupt traceback).
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except SystemExit:
        # uvicorn exits 3 when lifespan startup fails or the port cannot be bound; the reason is
        # already logged.
        raise CommandError(
            f"the API did not start on {settings.api_host}:{settings.api_port} (see the log above)"
        ) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def cmd_scheduler(args: argparse.Namespace) -> int:
    settings = prepare(args)
    from ordinaut.scheduler import run_scheduler, tick_once

    if args.once:
        with database_errors(settings):
            result = asyncio.run(tick_once(settings))
        print(json.dumps(result.__dict__))
        return EXIT_OK

    port = settings.scheduler_metrics_port if args.metrics_port is None else args.metrics_port
    return run_loop(settings, port, lambda stop: run_scheduler(settings, stop))


def cmd_worker(args: argparse.Namespace) -> int:
    settings = prepare(args)
    from ordinaut.worker import run_worker

    port = settings.worker_metrics_port if args.metrics_port is None else args.metrics_port
    return run_loop(
        settings, port, lambda stop: run_worker(settings, stop, worker_id=args.worker_id)
    )


def cmd_relay(args: argparse.Namespace) -> int:
    settings = prepare(args)
    require_redis(settings)
    from ordinaut.events import run_relay

    return run_loop(settings, 0, lambda stop: run_relay(settings, stop))


def cmd_events_consumer(args: argparse.Namespace) -> int:
    settings = prepare(args)
    require_redis(settings)
    from ordinaut.consumer import run_consumer_process

    return run_loop(settings, 0, lambda stop: run_consumer_process(settings, stop))


# --- the parsers -------------------------------------------------------------------------------


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add api, scheduler, worker, relay and events-consumer to the ``ordinaut`` parser."""
    p = subparser(
        sub,
        "api",
        "serve the REST API (uvicorn)",
        "Serve the REST API with uvicorn on ORDINAUT_API_HOST:ORDINAUT_API_PORT\n"
        "(default 127.0.0.1:8080; use --host 0.0.0.0 in a container). Metrics are at /metrics.",
        "  ordinaut api\n  ordinaut api --host 0.0.0.0 --port 8000",
    )
    p.add_argument(
        "--host", metavar="HOST", help="interface to bind (default: ORDINAUT_API_HOST or 127.0.0.1)"
    )
    p.add_argument(
        "--port", type=port_number, metavar="PORT", help="port (default: ORDINAUT_API_PORT or 8080)"
    )
    p.set_defaults(func=cmd_api)

    p = subparser(
        sub,
        "scheduler",
        "run the scheduler loop that turns schedules into due work",
        "Run the scheduler: every tick it materializes the slots due soon for every active\n"
        "task. Several schedulers may run at once; no slot is ever created twice. Serves\n"
        "Prometheus metrics on 127.0.0.1:ORDINAUT_SCHEDULER_METRICS_PORT (default 9101).",
        "  ordinaut scheduler\n  ordinaut scheduler --metrics-port 0\n"
        "  ordinaut scheduler --once      one tick, then exit (Cloud Scheduler / cron jobs)",
    )
    p.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        help="metrics port on 127.0.0.1 (0 disables; default 9101)",
    )
    p.add_argument(
        "--once", action="store_true", help="run one tick, print its summary as JSON, exit"
    )
    p.set_defaults(func=cmd_scheduler)

    p = subparser(
        sub,
        "worker",
        "run a worker that leases due work and runs task pipelines",
        "Run a worker: it leases due work (FOR UPDATE SKIP LOCKED), runs each pipeline,\n"
        "records the run and retries failures with backoff. Run as many as you like. On\n"
        "SIGTERM it stops leasing, finishes or releases what it holds, and exits 0. Serves\n"
        "Prometheus metrics on 127.0.0.1:ORDINAUT_WORKER_METRICS_PORT (default 9102).",
        "  ordinaut worker\n  ordinaut worker --worker-id w1 --concurrency 32 --metrics-port 9201",
    )
    p.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        help="metrics port on 127.0.0.1 (0 disables; default 9102)",
    )
    p.add_argument(
        "--worker-id", metavar="ID", help="name in logs and heartbeats (default: host and pid)"
    )
    p.add_argument(
        "--concurrency",
        type=count,
        metavar="N",
        help="runs at once in this process (default: ORDINAUT_WORKER_CONCURRENCY or 16)",
    )
    p.set_defaults(func=cmd_worker)

    p = subparser(
        sub,
        "relay",
        "relay the outbox to Redis Streams on its own (workers also do it)",
        "Publish lifecycle events from the outbox table to the Redis stream ordinaut:events,\n"
        "in order; several relays may run (one publishes at a time). Every worker runs one\n"
        "too: use this where workers do not run long (Lambda).",
        "  ordinaut relay",
    )
    p.set_defaults(func=cmd_relay)

    p = subparser(
        sub,
        "events-consumer",
        "consume the ingest stream on its own (workers also do it)",
        "Read external events that producers XADD to ordinaut:ingest (consumer group),\n"
        "store them like POST /events and acknowledge them; reclaim entries a crashed\n"
        "consumer left pending; park entries that keep failing in ordinaut:ingest:dead.",
        "  ordinaut events-consumer",
    )
    p.set_defaults(func=cmd_events_consumer)
