"""What every ``ordinaut`` command shares: exit codes, ``CommandError``, settings and logging, the
database checks, and the argparse pieces each command group builds its parser from.

The leaf of the package: it imports no other ``ordinaut.cli`` module (an import-linter contract
in pyproject.toml keeps it so), and nothing heavy, so ``ordinaut --help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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


class CommandError(Exception):
    """A failure reported as one line on stderr, with the process exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- settings, logging, the database -------------------------------------------------------


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


def require_redis(settings: Settings) -> None:
    if not settings.redis_url:
        raise CommandError("ORDINAUT_REDIS_URL is not set; export it (redis://...)", EXIT_USAGE)


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


# --- building the parser -------------------------------------------------------------------

SubParsers = argparse._SubParsersAction  # the type argparse gives add_subparsers()
Command = Callable[[argparse.Namespace], int]

# The exit codes are explained once, in `ordinaut --help`; each REST command's page points there.
EXIT_CODES = "exit codes: listed once, in `ordinaut --help`"


def int_in(low: int, high: int, what: str) -> Callable[[str], int]:
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


def label_pair(text: str) -> tuple[str, str]:
    """An argparse type: ``KEY=VALUE`` (a task label); the API checks the key and the value."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"a label is KEY=VALUE, e.g. user=ana: {text!r}")
    return key, value


def label_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """``--label KEY=VALUE``, repeatable; ``labels_of`` reads it back."""
    parser.add_argument(
        "--label",
        dest="labels",
        action="append",
        type=label_pair,
        metavar="KEY=VALUE",
        help=what,
    )


def labels_of(args: argparse.Namespace) -> dict[str, str] | None:
    """The ``--label`` flags given as a map (the last value of a repeated key wins); None
    when there were none."""
    pairs = getattr(args, "labels", None)
    return dict(pairs) if pairs else None


port_number = int_in(0, 65535, "port number")
count = int_in(1, 10_000, "count")
process_count = int_in(1, 64, "process count")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps hand-wrapped descriptions and examples, with room for the command names."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)
        # argparse measures subcommand names without their extra indent, so "scheduler" would
        # wrap onto its own line; start the help column far enough right for every name.
        self._action_max_length = 16


def subparser(
    sub: SubParsers[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    examples: str,
) -> argparse.ArgumentParser:
    """A command's parser: ``summary`` in the list of commands, then its own help page."""
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"examples:\n{examples}",
        formatter_class=HelpFormatter,
    )


def missing_subcommand(parser: argparse.ArgumentParser) -> Command:
    """The command of a group given without a subcommand: its help on stderr, exit 2."""

    def missing(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return missing


def group(
    sub: SubParsers[argparse.ArgumentParser], name: str, summary: str, examples: str
) -> SubParsers[argparse.ArgumentParser]:
    """A REST command group (``tasks``, ``runs``, ...); returns where its subcommands go."""
    parser = subparser(sub, name, summary, summary[0].upper() + summary[1:] + ".", examples)
    parser.epilog = f"{parser.epilog}\n\n{EXIT_CODES}"
    inner = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", title="commands")
    parser.set_defaults(func=missing_subcommand(parser))
    return inner


def leaf(
    sub: SubParsers[argparse.ArgumentParser],
    name: str,
    summary: str,
    examples: str,
    func: Command,
) -> argparse.ArgumentParser:
    """A REST command that runs ``func``; its page points to the exit codes."""
    parser = subparser(sub, name, summary, summary[0].upper() + summary[1:] + ".", examples)
    parser.epilog = f"{parser.epilog}\n\n{EXIT_CODES}"
    parser.set_defaults(func=func)
    return parser
