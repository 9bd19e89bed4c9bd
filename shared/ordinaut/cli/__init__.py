"""The ``ordinaut`` command: dev, api, scheduler, worker, migrate, agents.

Everything heavy (FastAPI, asyncpg, uvicorn, the scheduler and worker) is imported inside the
command that needs it, so ``ordinaut --help`` answers at once and works before those land.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from ordinaut import __version__
from ordinaut.auth import ADMIN, SCOPES
from ordinaut.config import Settings, load_settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
# The REST commands (login, tasks, runs, events) also answer with these.
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_CONFLICT = 5
EXIT_RUN_FAILED = 6
EXIT_TIMEOUT = 7

# A new agent without --scopes can do everything but administer other agents.
DEFAULT_SCOPES = tuple(s for s in SCOPES if s != ADMIN)

DESCRIPTION = """\
Ordinaut: durable task scheduling for AI assistants.

Configuration comes from ORDINAUT_* environment variables (ORDINAUT_DATABASE_URL,
ORDINAUT_REDIS_URL, ORDINAUT_API_PORT, ORDINAUT_LOG_LEVEL, ORDINAUT_LOG_JSON, ...);
flags override them for one run.
"""

EPILOG = """\
examples:
  ordinaut dev                         everything on this machine, nothing to install
  ordinaut migrate                     apply pending migrations to ORDINAUT_DATABASE_URL
  ordinaut api --port 8080             serve the REST API
  ordinaut worker --metrics-port 0     run a worker without a metrics endpoint
  ordinaut agents create ci-bot --scopes tasks:read,runs:read
  ordinaut tasks create -f task.yaml   (ordinaut tasks create --help shows the file format)

exit codes:
  0  done; a server process stopped cleanly by Ctrl-C (SIGINT) or SIGTERM;
     for --follow, the run succeeded
  1  failed while running (database unreachable, port in use, a process died), or the API
     failed or could not be reached (5xx, 429 after retries, connection refused)
  2  bad usage, configuration or input: unknown flag, bad ORDINAUT_* value, no database URL,
     unreadable or unparsable file, a task or field the API rejected (400/422)
  3  not found: no such task or run, or it belongs to another agent (404)
  4  not authenticated or not allowed: no or expired token, missing scope (401/403)
  5  conflict: the task's or run's state forbids it, e.g. pausing a paused task (409)
  6  the followed run ended without success (failed, dead_letter, canceled, skipped)
  7  --follow gave up: the run was still going when --timeout passed
"""


class CommandError(Exception):
    """A failure reported as one line on stderr, with the process exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- settings, logging, errors -----------------------------------------------------------------


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, then the flags that were given (a config error exits 2)."""
    overrides: dict[str, Any] = {}
    for flag, field in (("host", "api_host"), ("port", "api_port")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    if getattr(args, "concurrency", None) is not None:
        overrides["worker_concurrency"] = args.concurrency
    try:
        settings = load_settings(**overrides)
    except (ValueError, TypeError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise CommandError(
            f"ORDINAUT_LOG_LEVEL: {settings.log_level!r} is not one of "
            "DEBUG, INFO, WARNING, ERROR, CRITICAL",
            EXIT_USAGE,
        )
    return settings


def prepare(args: argparse.Namespace) -> Settings:
    """What every command that touches the database does first: settings, URL check, logging,
    and tracing when OTEL_* variables configure an exporter."""
    settings = settings_from(args)
    require_database(settings)
    configure_logging(settings)
    from ordinaut import tracing

    tracing.configure(str(getattr(args, "command", None) or "cli"))
    return settings


def configure_logging(settings: Settings) -> None:
    from ordinaut import logs

    logs.configure(settings.log_level, json_output=settings.log_json)


def require_database(settings: Settings) -> None:
    if not settings.database_url:
        raise CommandError(
            "ORDINAUT_DATABASE_URL is not set; export it (postgresql://...) "
            "or run `ordinaut dev`, which starts a database for you",
            EXIT_USAGE,
        )


def redact(url: str) -> str:
    """The URL with any password replaced, fit for an error message."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@contextlib.contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """Turn connection and server errors into one line instead of a traceback."""
    import asyncpg

    try:
        yield
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        reason = str(exc) or type(exc).__name__  # a connect timeout has an empty message
        raise CommandError(
            f"cannot reach the database at {redact(settings.database_url)}: {reason}"
        ) from None
    except asyncpg.PostgresError as exc:
        raise CommandError(f"database error: {exc}") from None


# --- long-running processes --------------------------------------------------------------------


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


def cmd_api(args: argparse.Namespace) -> int:
    settings = prepare(args)
    import uvicorn

    from ordinaut.api.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.api_host, port=settings.api_port, log_config=None, lifespan="on"
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
    """Collect cyclic garbage less eagerly in a long-running loop.

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


def require_redis(settings: Settings) -> None:
    if not settings.redis_url:
        raise CommandError("ORDINAUT_REDIS_URL is not set; export it (redis://...)", EXIT_USAGE)


def cmd_dev(args: argparse.Namespace) -> int:
    from ordinaut.cli import dev

    return dev.run(args)


# --- one-shot commands -------------------------------------------------------------------------


async def apply_migrations(settings: Settings) -> list[str]:
    from ordinaut.store import db

    conn = await db.connect(settings)
    try:
        return await db.migrate(conn, settings.migrations_dir)
    finally:
        await conn.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.migrations_dir:
        settings = settings.replace(migrations_dir=args.migrations_dir)
    require_database(settings)
    configure_logging(settings)
    with database_errors(settings):
        try:
            applied = asyncio.run(apply_migrations(settings))
        except RuntimeError as exc:  # a changed or missing migration file
            raise CommandError(str(exc)) from None
    if applied:
        for version in applied:
            print(f"applied {version}")
    else:
        print("database is up to date")
    return EXIT_OK


def parse_scopes(raw: str | None, *, admin: bool) -> list[str]:
    """Scopes for a new agent: ``--admin`` means every scope; unknown names exit 2."""
    if admin:
        return list(SCOPES)
    if raw is None:
        return list(DEFAULT_SCOPES)
    scopes = [s.strip() for s in raw.split(",") if s.strip()]
    if not scopes:
        raise CommandError("--scopes needs at least one scope", EXIT_USAGE)
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise CommandError(
            f"unknown scope {', '.join(unknown)}; known: {', '.join(SCOPES)}", EXIT_USAGE
        )
    return list(dict.fromkeys(scopes))


async def create_agent(settings: Settings, name: str, scopes: list[str]) -> dict[str, Any]:
    from ordinaut.clock import DatabaseClock
    from ordinaut.store import agents, db

    conn = await db.connect(settings)
    try:
        clock = DatabaseClock()  # one clock: the database's (docs/guarantees.md, "One clock")
        await db.sync_clock(conn, clock)
        agent, secret = await agents.create_agent(conn, name=name, scopes=scopes, now=clock.now())
    finally:
        await conn.close()
    return {
        "agent_id": str(agent.id),
        "name": agent.name,
        "scopes": list(agent.scopes),
        "agent_secret": secret,
    }


def cmd_agents_create(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    scopes = parse_scopes(args.scopes, admin=args.admin)
    if not 1 <= len(args.name) <= 200:
        raise CommandError("agent name must be 1 to 200 characters", EXIT_USAGE)
    require_database(settings)
    configure_logging(settings)
    with database_errors(settings):
        created = asyncio.run(create_agent(settings, args.name, scopes))
    if args.json:
        print(json.dumps(created))
        return EXIT_OK
    url = settings.public_url or f"http://127.0.0.1:{settings.api_port}"
    body = json.dumps({"agent_id": created["agent_id"], "agent_secret": created["agent_secret"]})
    print(
        f"created agent {created['name']}\n"
        f"  agent_id      {created['agent_id']}\n"
        f"  agent_secret  {created['agent_secret']}   (shown once: store it now)\n"
        f"  scopes        {','.join(created['scopes'])}\n"
        "exchange it for a token:\n"
        f"  curl -s -X POST {url}/agents/auth/token -H 'Content-Type: application/json' "
        f"-d '{body}'"
    )
    return EXIT_OK


# --- the parser --------------------------------------------------------------------------------


def _int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], else a usage error naming the flag's kind."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be {low}..{high}: {value}")
        return value

    return parse


_port = _int_in(0, 65535, "port number")
_positive = _int_in(1, 10_000, "count")
_processes = _int_in(1, 64, "process count")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps hand-wrapped descriptions and examples, with room for the command names."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)
        # argparse measures subcommand names without their extra indent, so "scheduler" would
        # wrap onto its own line; start the help column far enough right for every name.
        self._action_max_length = 16


def _subparser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    examples: str,
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"examples:\n{examples}",
        formatter_class=_HelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ordinaut",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ordinaut {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    p = _subparser(
        sub,
        "dev",
        "run everything locally: embedded PostgreSQL + Redis, API, scheduler, worker",
        "Start a complete Ordinaut on this machine with nothing installed but Python: embedded\n"
        "PostgreSQL and Redis with data under ORDINAUT_HOME (default .ordinaut/) that survives\n"
        "restarts, migrations applied, the API, scheduler and workers as child processes, and\n"
        "an admin credential saved to .ordinaut/credentials.json (only its path is printed;\n"
        "the secret is shown once, on a terminal, when the admin is created). Set\n"
        "ORDINAUT_DATABASE_URL / ORDINAUT_REDIS_URL to use external servers instead.\n"
        "Ctrl-C stops everything.",
        "  ordinaut dev\n  ordinaut dev --port 9000 --workers 2\n  ordinaut dev --no-scheduler\n"
        "  ordinaut dev --allow-loopback-egress     for examples/ (stub services on 127.0.0.1)",
    )
    p.add_argument(
        "--port", type=_port, metavar="PORT", help="API port (default: ORDINAUT_API_PORT or 8080)"
    )
    p.add_argument(
        "--workers", type=_processes, default=1, metavar="N", help="worker processes (default: 1)"
    )
    p.add_argument("--no-scheduler", action="store_true", help="do not start the scheduler process")
    p.add_argument(
        "--allow-loopback-egress",
        action="store_true",
        help="let http.request steps reach 127.0.0.0/8 and ::1 (the examples' stub services); "
        "other internal addresses stay refused",
    )
    p.set_defaults(func=cmd_dev)

    p = _subparser(
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
        "--port", type=_port, metavar="PORT", help="port (default: ORDINAUT_API_PORT or 8080)"
    )
    p.set_defaults(func=cmd_api)

    p = _subparser(
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
        type=_port,
        metavar="PORT",
        help="metrics port on 127.0.0.1 (0 disables; default 9101)",
    )
    p.add_argument(
        "--once", action="store_true", help="run one tick, print its summary as JSON, exit"
    )
    p.set_defaults(func=cmd_scheduler)

    p = _subparser(
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
        type=_port,
        metavar="PORT",
        help="metrics port on 127.0.0.1 (0 disables; default 9102)",
    )
    p.add_argument(
        "--worker-id", metavar="ID", help="name in logs and heartbeats (default: host and pid)"
    )
    p.add_argument(
        "--concurrency",
        type=_positive,
        metavar="N",
        help="runs at once in this process (default: ORDINAUT_WORKER_CONCURRENCY or 16)",
    )
    p.set_defaults(func=cmd_worker)

    p = _subparser(
        sub,
        "relay",
        "relay the outbox to Redis Streams on its own (workers also do it)",
        "Publish lifecycle events from the outbox table to the Redis stream ordinaut:events,\n"
        "in order; several relays may run (one publishes at a time). Every worker runs one\n"
        "too: use this where workers do not run long (Lambda).",
        "  ordinaut relay",
    )
    p.set_defaults(func=cmd_relay)

    p = _subparser(
        sub,
        "events-consumer",
        "consume the ingest stream on its own (workers also do it)",
        "Read external events that producers XADD to ordinaut:ingest (consumer group),\n"
        "store them like POST /events and acknowledge them; reclaim entries a crashed\n"
        "consumer left pending; park entries that keep failing in ordinaut:ingest:dead.",
        "  ordinaut events-consumer",
    )
    p.set_defaults(func=cmd_events_consumer)

    p = _subparser(
        sub,
        "migrate",
        "apply pending database migrations (running it twice is a no-op)",
        "Apply the SQL files in migrations/ that the database has not seen, in order, under an\n"
        "advisory lock, and record each in schema_migrations. Already applied: nothing happens.",
        "  ordinaut migrate\n"
        "  ORDINAUT_DATABASE_URL=postgresql://user:pass@127.0.0.1/ordinaut ordinaut migrate",
    )
    p.add_argument("--migrations-dir", metavar="DIR", help="directory of NNNN_name.sql files")
    p.set_defaults(func=cmd_migrate)

    agents = _subparser(
        sub,
        "agents",
        "manage agents (API clients) from the command line",
        "Manage agents directly in the database; use this to create the first admin.",
        "  ordinaut agents create ops --admin",
    )
    agents_sub = agents.add_subparsers(dest="agents_command", metavar="COMMAND", title="commands")
    agents.set_defaults(func=lambda _args: _missing_subcommand(agents))
    p = _subparser(
        agents_sub,
        "create",
        "create an agent and print its one-time secret",
        "Create an agent and print its id and secret (the secret is shown only once).\n"
        "Exchange them for a token with POST /agents/auth/token. Default scopes:\n"
        f"{','.join(DEFAULT_SCOPES)}; --admin grants every scope, including admin.",
        "  ordinaut agents create ops --admin\n"
        "  ordinaut agents create reporter --scopes tasks:read,runs:read --json",
    )
    p.add_argument("name", help="a human-readable name (1-200 characters)")
    p.add_argument("--admin", action="store_true", help="grant every scope, including admin")
    p.add_argument(
        "--scopes", metavar="A,B", help="comma-separated scopes, e.g. tasks:read,runs:read"
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_agents_create)

    from ordinaut.cli import parsers  # login, tasks, runs, events, mcp: REST clients

    parsers.register(sub, _subparser)
    return parser


def _missing_subcommand(parser: argparse.ArgumentParser) -> NoReturn:
    parser.print_help(sys.stderr)
    raise SystemExit(EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ordinaut`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
    except CommandError as exc:
        print(f"ordinaut: error: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        # Ctrl-C before a command installed its own handlers: stopping is what was asked for.
        return EXIT_OK
    return code

