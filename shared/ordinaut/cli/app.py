"""The ``ordinaut`` parser and dispatcher: each command group registers its own sub-parser, and
``main`` runs the chosen command and turns its ``CommandError`` into one line and an exit code.

Everything heavy (FastAPI, asyncpg, uvicorn, the scheduler and worker, the REST client) is
imported inside the command that needs it, so ``ordinaut --help`` answers at once and works
before those land.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ordinaut import __version__
from ordinaut.cli import (
    admin,
    agents,
    dev,
    events,
    login,
    mcp,
    migrate,
    processes,
    runs,
    tasks,
)
from ordinaut.cli.common import EXIT_OK, EXIT_USAGE, CommandError, HelpFormatter

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

# In the order `ordinaut --help` lists them: the local stack, the service's processes and its
# database, then the REST commands an assistant or a person uses.
GROUPS = (dev, processes, migrate, agents, login, tasks, runs, events, mcp, admin)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ordinaut",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ordinaut {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for group in GROUPS:
        group.register(sub)
    return parser


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
