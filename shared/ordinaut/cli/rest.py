"""How the REST commands (login, tasks, runs, events, mcp, admin) reach the API: the connection
flags, the client from them or the saved login, API errors as exit codes, task files, titles,
and following a run.

``ordinaut.client`` (httpx and pydantic, about a quarter of a second) is imported when a
command runs, not when the parser is built, so ``ordinaut --help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ordinaut.cli.common import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CommandError,
)
from ordinaut.cli.output import Progress, print_json, render_run

if TYPE_CHECKING:
    from ordinaut.client import Ordinaut, OrdinautAPIError, Run


# --- the flags -----------------------------------------------------------------------------


def connection_flags(p: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    p.add_argument(
        "--url", metavar="URL", help="API base URL (default: $ORDINAUT_URL, the saved login)"
    )
    p.add_argument("--token", metavar="TOKEN", help="bearer token (default: $ORDINAUT_TOKEN)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print JSON for scripts")


def follow_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="give up after S seconds (exit 7)"
    )
    p.add_argument(
        "--interval", type=float, default=0.5, metavar="S", help="poll every S seconds (0.5)"
    )


# --- connection and errors -----------------------------------------------------------------


def connect(args: argparse.Namespace) -> Ordinaut:
    """A client for ``--url`` / ``--token``, else the environment, else the saved login."""
    from ordinaut.client import Ordinaut
    from ordinaut.client import credentials as store

    environ = os.environ
    conn = store.resolve(environ, url=args.url, token=args.token)
    return Ordinaut(
        conn.url,
        **conn.client_kwargs(),
        on_tokens=lambda tokens: store.remember_token(environ, conn.url, tokens),
    )


def _first_line_hint(exc: OrdinautAPIError) -> str:
    from ordinaut.client import AuthError

    if isinstance(exc, AuthError) and exc.status == 401:
        return "\n  log in with `ordinaut login --url URL`, or set ORDINAUT_TOKEN"
    return ""


@contextmanager
def api_errors() -> Iterator[None]:
    """Client exceptions as one error message and the documented exit code."""
    from ordinaut.client import (
        AuthError,
        BadRequestError,
        ConflictError,
        NotFoundError,
        OrdinautAPIError,
        OrdinautConnectionError,
        PayloadTooLargeError,
        ValidationError,
    )

    try:
        yield
    except OrdinautConnectionError as exc:
        raise CommandError(str(exc), EXIT_FAILURE) from None
    except OrdinautAPIError as exc:
        code = EXIT_FAILURE
        if isinstance(exc, ValidationError | BadRequestError | PayloadTooLargeError):
            code = EXIT_USAGE
        elif isinstance(exc, NotFoundError):
            code = EXIT_NOT_FOUND
        elif isinstance(exc, AuthError):
            code = EXIT_AUTH
        elif isinstance(exc, ConflictError):
            code = EXIT_CONFLICT
        rid = f", request {exc.request_id}" if exc.request_id else ""
        lines = [f"{exc.message} ({exc.code}, HTTP {exc.status}{rid})"]
        lines += [f"  {p['field']}: {p['message']}" for p in exc.problems]
        raise CommandError("\n".join(lines) + _first_line_hint(exc), code) from None


# --- what several commands read ------------------------------------------------------------


def task_titles(client: Ordinaut, task_ids: Iterable[str]) -> dict[str, str]:
    """Titles of the given tasks, one request per distinct task (a page of runs rarely spans
    many); a task deleted meanwhile is shown as such."""
    from ordinaut.client import NotFoundError

    titles: dict[str, str] = {}
    for task_id in dict.fromkeys(task_ids):
        try:
            titles[task_id] = client.get_task(task_id).title
        except NotFoundError:
            titles[task_id] = f"(deleted task {task_id[:8]})"
    return titles


def task_title(client: Ordinaut, task_id: str) -> str:
    """One task's title (``task_titles`` for a single task)."""
    return task_titles(client, [task_id])[task_id]


# The API's default body bound (ORDINAUT_MAX_BODY_BYTES); a server set higher still gets one.
MAX_TASK_FILE_BYTES = 256 * 1024


def read_task_file(name: str) -> dict[str, Any]:
    """A task body from a YAML or JSON file ('-' for stdin), read as the API reads one
    (``ordinaut.documents``: no ``ordinaut.pipeline``, which a client install cannot import)."""
    from ordinaut.documents import parse_text
    from ordinaut.errors import InvalidPipeline

    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        body = parse_text(text, max_bytes=MAX_TASK_FILE_BYTES)
    except InvalidPipeline as exc:
        raise CommandError(f"{name}: {exc.message}", EXIT_USAGE) from None
    if not isinstance(body, dict):
        raise CommandError(f"{name}: a task must be a mapping of fields (title, ...)", EXIT_USAGE)
    return body


# --- following a run -----------------------------------------------------------------------


def follow(client: Ordinaut, run_id: str, args: argparse.Namespace) -> int:
    """Wait for the run (progress on stderr), show it; exit 0 only if it succeeded."""
    progress = Progress(run_id)
    try:
        run = client.wait_for_run(
            run_id, max_wait=args.timeout, poll_interval=args.interval, on_update=progress
        )
    except TimeoutError as exc:
        if progress.live:
            print(file=sys.stderr)
        raise CommandError(str(exc), EXIT_TIMEOUT) from None
    show_run(client, run, args)
    return EXIT_OK if run.status == "succeeded" else EXIT_RUN_FAILED


def show_run(client: Ordinaut, run: Run, args: argparse.Namespace) -> None:
    if args.json:
        print_json(run.to_json())
    else:
        print(render_run(run, task_title(client, run.task_id)))
