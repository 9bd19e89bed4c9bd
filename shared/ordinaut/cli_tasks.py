"""The assistant-facing commands: login, tasks, runs, events, mcp. They speak only REST, through
``ordinaut.client``. Their parsers are in ``cli_tasks_parser`` (light, so ``ordinaut --help``
stays fast); ``cli.py`` reports the ``CommandError`` they raise."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ordinaut.cli import (
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
from ordinaut.cli_output import (
    RUN_HEADERS,
    TASK_HEADERS,
    Progress,
    next_run,
    print_fire_times,
    print_json,
    print_next,
    render_run,
    run_row,
    table,
    task_row,
    utc,
)
from ordinaut.client import (
    AuthError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    Ordinaut,
    OrdinautAPIError,
    OrdinautConnectionError,
    PayloadTooLargeError,
    Run,
    ValidationError,
)
from ordinaut.client import credentials as store
from ordinaut.client.words import describe_schedule

# --- connection and errors -----------------------------------------------------------------


def _client(args: argparse.Namespace) -> Ordinaut:
    environ = os.environ
    conn = store.resolve(environ, url=args.url, token=args.token)
    return Ordinaut(
        conn.url,
        **conn.client_kwargs(),
        on_tokens=lambda tokens: store.remember_token(environ, conn.url, tokens),
    )


def _first_line_hint(exc: OrdinautAPIError) -> str:
    if isinstance(exc, AuthError) and exc.status == 401:
        return "\n  log in with `ordinaut login --url URL`, or set ORDINAUT_TOKEN"
    return ""


@contextmanager
def api_errors() -> Iterator[None]:
    """Client exceptions as one error message and the documented exit code."""
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


def task_titles(client: Ordinaut, task_ids: Iterable[str]) -> dict[str, str]:
    """Titles of the given tasks, one request per distinct task (a page of runs rarely spans
    many); a task deleted meanwhile is shown as such."""
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


# --- login ---------------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    environ = os.environ
    url = args.url or environ.get(store.ENV_URL)
    if not url:
        raise CommandError("--url is required (e.g. --url http://127.0.0.1:8080)", EXIT_USAGE)
    agent_id, secret, token = args.agent_id, args.secret, args.token
    if secret == "-":
        secret = sys.stdin.readline().strip()
    if token and (agent_id or secret):
        raise CommandError("give either --token or --agent-id with --secret, not both", EXIT_USAGE)
    if not token and not (agent_id and secret):
        if agent_id or secret:
            raise CommandError("--agent-id and --secret go together", EXIT_USAGE)
        if not sys.stdin.isatty():
            raise CommandError("give --token, or --agent-id and --secret", EXIT_USAGE)
        agent_id = input("agent id: ").strip()
        secret = getpass.getpass("agent secret: ").strip()
    with Ordinaut(url, token=token) as client, api_errors():
        if token:
            try:
                client.list_tools()  # any authenticated route proves the token
            except AuthError as exc:
                if exc.status == 401:
                    raise
            scope = "(scopes not shown for a token)"
        else:
            tokens = client.exchange_token(agent_id, secret)
            token, scope = tokens.access_token, f"scopes: {tokens.scope}"
    assert token is not None
    path = store.save_login(environ, url, token=token, agent_id=agent_id, agent_secret=secret)
    if args.json:
        print_json({"url": client.base_url, "agent_id": agent_id, "saved_to": str(path)})
    else:
        who = f"agent {agent_id}" if agent_id else "a token"
        print(f"logged in to {client.base_url} with {who} {scope}\nsaved to {path}")
    return EXIT_OK


# --- tasks ---------------------------------------------------------------------------------


def read_task_file(name: str) -> dict[str, Any]:
    """A task body from a YAML or JSON file ('-' for stdin)."""
    from ordinaut.errors import InvalidPipeline
    from ordinaut.pipeline import parse_pipeline_text

    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        body = parse_pipeline_text(text)
    except InvalidPipeline as exc:
        raise CommandError(f"{name}: {exc.message}", EXIT_USAGE) from None
    if not isinstance(body, dict):
        raise CommandError(f"{name}: a task must be a mapping of fields (title, ...)", EXIT_USAGE)
    return body


def cmd_tasks_create(args: argparse.Namespace) -> int:
    body = read_task_file(args.file)
    with _client(args) as client, api_errors():
        if args.dry_run:
            result = client.validate_task(body, dry_run=True)
            if args.json:
                print_json(result.to_json())
            else:
                print(f"valid; first run {utc(result.next_run_at)}")
            return EXIT_OK
        task = client.create_task(body)
        active = task.status == "active"
        preview = client.preview_task(task.id, limit=3).fire_times if active else []
    if args.json:
        print_json(task.to_json())
        return EXIT_OK
    print(f"created task {task.id} ({task.status})")
    print(f"  {describe_schedule(task.schedule_kind, task.schedule_expr, task.timezone)}")
    print_next(preview, task.timezone)
    return EXIT_OK


def cmd_tasks_list(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        if args.all:
            tasks = list(
                client.iter_tasks(status=args.status, schedule_kind=args.kind, search=args.search)
            )
            total = len(tasks)
        else:
            page = client.list_tasks(
                status=args.status, schedule_kind=args.kind, limit=args.limit, search=args.search
            )
            tasks, total = page.items, page.total
    if args.json:
        print_json({"items": [t.to_json() for t in tasks], "total": total})
        return EXIT_OK
    if not tasks:
        print("no tasks")
        return EXIT_OK
    print(table(TASK_HEADERS, [task_row(t) for t in tasks]))
    if total > len(tasks):
        print(f"({len(tasks)} of {total}; --all for every task)")
    return EXIT_OK


def cmd_tasks_show(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        task = client.get_task(args.id)
        active = task.status == "active"
        # A paused (or finished) task keeps its schedule but will not run: no "next runs".
        fires = client.preview_task(task.id, limit=args.next).fire_times if active else []
        runs = client.list_runs(task_id=task.id, limit=args.runs).items
    if args.json:
        print_json(
            {
                "task": task.to_json(),
                "next_fire_times": [utc(t).replace(" ", "T") for t in fires],
                "recent_runs": [r.to_json() for r in runs],
            }
        )
        return EXIT_OK
    steps = task.payload.get("pipeline") or []
    pipeline = ", ".join(f"{s.get('id', '?')} ({s.get('uses', '?')})" for s in steps)
    print(f"task {task.id}  {task.title}")
    print(f"  status      {task.status}")
    words = describe_schedule(task.schedule_kind, task.schedule_expr, task.timezone)
    print(f"  schedule    {words}  [{task.schedule_kind} '{task.schedule_expr}']")
    if not active:  # no fires were asked for: a paused or finished task will not run
        print(f"  next runs   {next_run(task)}: nothing runs until it is resumed")
    elif fires or task.schedule_kind not in ("event", "condition"):
        print_fire_times(fires, task.timezone, "next runs")
    print(f"  pipeline    {len(steps)} step(s): {pipeline or '-'}")
    print(
        f"  policy      priority {task.priority}, max_retries {task.max_retries}, "
        f"{task.backoff_strategy}, misfire {task.misfire_policy}, overlap {task.overlap_policy}"
    )
    print(f"  created     {utc(task.created_at)}, updated {utc(task.updated_at)}")
    print()
    if runs:
        print("recent runs")
        print(table(RUN_HEADERS, [run_row(r, {task.id: task.title}) for r in runs]))
    else:
        print("no runs yet")
    return EXIT_OK


def _task_action(action: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with _client(args) as client, api_errors():
            task = getattr(client, f"{action}_task")(args.id)
        if args.json:
            print_json(task.to_json())
        else:
            print(f"task {task.id} is {task.status}")
        return EXIT_OK

    return run


cmd_tasks_pause = _task_action("pause")
cmd_tasks_resume = _task_action("resume")
cmd_tasks_cancel = _task_action("cancel")


def cmd_tasks_run_now(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        queued = client.run_task_now(args.id)
        if args.follow:
            return _follow(client, queued.run_id, args)
    if args.json:
        print_json(queued.to_json())
    else:
        print(f"queued run {queued.run_id} of task {queued.task_id}")
        print(f"  follow it with: ordinaut runs show {queued.run_id} --follow")
    return EXIT_OK


# --- runs ----------------------------------------------------------------------------------


def cmd_runs_list(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        page = client.list_runs(task_id=args.task, status=args.status, limit=args.limit)
        titles = {} if args.json else task_titles(client, [r.task_id for r in page.items])
    if args.json:
        print_json({"items": [r.to_json() for r in page.items], "total": page.total})
        return EXIT_OK
    if not page.items:
        print("no runs")
        return EXIT_OK
    print(table(RUN_HEADERS, [run_row(r, titles) for r in page.items]))
    if page.total > len(page.items):
        print(f"({len(page.items)} of {page.total}; --limit to see more)")
    return EXIT_OK


def _follow(client: Ordinaut, run_id: str, args: argparse.Namespace) -> int:
    progress = Progress(run_id)
    try:
        run = client.wait_for_run(
            run_id, max_wait=args.timeout, poll_interval=args.interval, on_update=progress
        )
    except TimeoutError as exc:
        if progress.live:
            print(file=sys.stderr)
        raise CommandError(str(exc), EXIT_TIMEOUT) from None
    _show_run(client, run, args)
    return EXIT_OK if run.status == "succeeded" else EXIT_RUN_FAILED


def _show_run(client: Ordinaut, run: Run, args: argparse.Namespace) -> None:
    if args.json:
        print_json(run.to_json())
    else:
        print(render_run(run, task_title(client, run.task_id)))


def cmd_runs_show(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        if args.follow:
            return _follow(client, args.id, args)
        run = client.get_run(args.id)
        _show_run(client, run, args)
    return EXIT_OK


# --- events --------------------------------------------------------------------------------


def cmd_events_publish(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.data) if args.data is not None else {}
    except ValueError as exc:
        raise CommandError(f"--data is not JSON: {exc}", EXIT_USAGE) from None
    with _client(args) as client, api_errors():
        accepted = client.publish_event(args.topic, payload, event_id=args.event_id)
    if args.json:
        print_json(accepted.to_json())
    else:
        dup = " (duplicate: already accepted)" if accepted.duplicate else ""
        refused = (
            f", {accepted.runs_refused} refused (max_runs_per_minute_per_agent)"
            if accepted.runs_refused
            else ""
        )
        print(
            f"published event {accepted.event_id} on {accepted.topic}{dup}: "
            f"{accepted.tasks_matched} task(s) matched, {accepted.runs_queued} run(s) queued"
            f"{refused}"
        )
    return EXIT_OK


# --- mcp -----------------------------------------------------------------------------------


def cmd_mcp(args: argparse.Namespace) -> int:
    from ordinaut.mcp import stdio

    conn = store.resolve(os.environ, url=args.url, token=args.token)
    return stdio.main(conn, transport=args.transport, host=args.host, port=args.port)
