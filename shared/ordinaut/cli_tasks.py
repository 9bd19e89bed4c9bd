"""The assistant-facing commands: login, tasks, runs, events, mcp. They speak only REST, through
``ordinaut.client``; ``cli.py`` registers them (``register``) and reports ``CommandError``."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ordinaut.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError
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
    Task,
    ValidationError,
)
from ordinaut.client import credentials as store
from ordinaut.client.models import RUN_STATUSES, TASK_STATUSES
from ordinaut.client.words import describe_schedule, local_time

EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_CONFLICT = 5
EXIT_RUN_FAILED = 6
EXIT_TIMEOUT = 7

EXIT_CODES = """\
exit codes:
  0  done (for --follow: the run succeeded)
  1  the API failed or could not be reached (5xx, 429 after retries, connection refused)
  2  bad usage or input: unknown flag, unreadable file, a task or field the API rejected (400/422)
  3  not found: no such task or run, or it belongs to another agent (404)
  4  not authenticated or not allowed: no or expired token, missing scope (401/403)
  5  conflict: the task's state forbids it, e.g. pausing a paused task (409)
  6  the followed run ended without success (failed, dead_letter, canceled, skipped)
  7  --follow gave up: the run was still going when --timeout passed
"""

SubParsers = argparse._SubParsersAction  # the type argparse gives add_subparsers()
Factory = Callable[..., argparse.ArgumentParser]


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


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


# --- rendering -----------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _utc(value: Any) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _task_row(task: Task) -> list[str]:
    nxt = local_time(task.next_run_at, task.timezone) if task.next_run_at else "-"
    words = describe_schedule(task.schedule_kind, task.schedule_expr, task.timezone)
    return [task.id, _clip(task.title, 30), task.status, _clip(words, 50), nxt]


def _run_row(run: Run) -> list[str]:
    return [
        run.id,
        run.task_id,
        run.status,
        str(run.attempt),
        run.trigger,
        _utc(run.scheduled_for),
        _duration(run.duration_ms),
    ]


RUN_HEADERS = ["ID", "TASK", "STATUS", "ATTEMPT", "TRIGGER", "SCHEDULED FOR", "DURATION"]


def _short(value: Any, width: int = 60) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return _clip(text.replace("\n", " "), width)


def render_run(run: Run) -> str:
    lines = [
        f"run {run.id}  {run.status}  (task {run.task_id})",
        f"  trigger        {run.trigger}" + (f" (event {run.event_id})" if run.event_id else ""),
        f"  attempt        {run.attempt}",
        f"  scheduled for  {_utc(run.scheduled_for)}",
        f"  started        {_utc(run.started_at)}",
        f"  finished       {_utc(run.finished_at)}  ({_duration(run.duration_ms)})",
    ]
    if run.output is not None:
        lines.append(f"  output         {_short(run.output, 200)}")
    if run.error:
        lines.append(f"  error          {_short(run.error, 200)}")
    steps = run.step_results or []
    if steps:
        rows = []
        for step in steps:
            result = step.get("error") if step.get("error") else step.get("output")
            rows.append(
                [
                    str(step.get("id", "?")),
                    str(step.get("uses", "?")),
                    str(step.get("status", "?")),
                    _duration(step.get("duration_ms")),
                    _short(result),
                ]
            )
        lines += [
            "",
            "steps",
            table(["STEP", "TOOL", "STATUS", "DURATION", "OUTPUT / ERROR"], rows),
        ]
    return "\n".join(lines)


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
        _print_json({"url": client.base_url, "agent_id": agent_id, "saved_to": str(path)})
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
                _print_json(result.to_json())
            else:
                print(f"valid; first run {_utc(result.next_run_at)}")
            return EXIT_OK
        task = client.create_task(body)
        preview = client.preview_task(task.id, limit=3).fire_times
    if args.json:
        _print_json(task.to_json())
        return EXIT_OK
    print(f"created task {task.id} ({task.status})")
    print(f"  {describe_schedule(task.schedule_kind, task.schedule_expr, task.timezone)}")
    for at in preview:
        print(f"  next  {local_time(at, task.timezone)}  ({_utc(at)})")
    return EXIT_OK


def cmd_tasks_list(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        if args.all:
            tasks = list(client.iter_tasks(status=args.status, schedule_kind=args.kind))
            total = len(tasks)
        else:
            page = client.list_tasks(status=args.status, schedule_kind=args.kind, limit=args.limit)
            tasks, total = page.items, page.total
    if args.json:
        _print_json({"items": [t.to_json() for t in tasks], "total": total})
        return EXIT_OK
    if not tasks:
        print("no tasks")
        return EXIT_OK
    print(table(["ID", "TITLE", "STATUS", "SCHEDULE", "NEXT RUN"], [_task_row(t) for t in tasks]))
    if total > len(tasks):
        print(f"({len(tasks)} of {total}; --all for every task)")
    return EXIT_OK


def cmd_tasks_show(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        task = client.get_task(args.id)
        fires = client.preview_task(task.id, limit=args.next).fire_times
        runs = client.list_runs(task_id=task.id, limit=args.runs).items
    if args.json:
        _print_json(
            {
                "task": task.to_json(),
                "next_fire_times": [_utc(t).replace(" ", "T") for t in fires],
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
    for i, at in enumerate(fires):
        label = "next runs" if i == 0 else ""
        print(f"  {label:<10}  {local_time(at, task.timezone)}  ({_utc(at)})")
    if not fires and task.schedule_kind != "event":
        print("  next runs   none")
    print(f"  pipeline    {len(steps)} step(s): {pipeline or '-'}")
    print(
        f"  policy      priority {task.priority}, max_retries {task.max_retries}, "
        f"{task.backoff_strategy}, misfire {task.misfire_policy}, overlap {task.overlap_policy}"
    )
    print(f"  created     {_utc(task.created_at)}, updated {_utc(task.updated_at)}")
    print()
    if runs:
        print("recent runs")
        print(table(RUN_HEADERS, [_run_row(r) for r in runs]))
    else:
        print("no runs yet")
    return EXIT_OK


def _task_action(action: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with _client(args) as client, api_errors():
            task = getattr(client, f"{action}_task")(args.id)
        if args.json:
            _print_json(task.to_json())
        else:
            print(f"task {task.id} is {task.status}")
        return EXIT_OK

    return run


def cmd_tasks_run_now(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        queued = client.run_task_now(args.id)
        if args.follow:
            return _follow(client, queued.run_id, args)
    if args.json:
        _print_json(queued.to_json())
    else:
        print(f"queued run {queued.run_id} of task {queued.task_id}")
        print(f"  follow it with: ordinaut runs show {queued.run_id} --follow")
    return EXIT_OK


# --- runs ----------------------------------------------------------------------------------


def cmd_runs_list(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        page = client.list_runs(task_id=args.task, status=args.status, limit=args.limit)
    if args.json:
        _print_json({"items": [r.to_json() for r in page.items], "total": page.total})
        return EXIT_OK
    if not page.items:
        print("no runs")
        return EXIT_OK
    print(table(RUN_HEADERS, [_run_row(r) for r in page.items]))
    if page.total > len(page.items):
        print(f"({len(page.items)} of {page.total}; --limit to see more)")
    return EXIT_OK


class Progress:
    """Status changes of a followed run on stderr; on a terminal, a live elapsed-time line."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.started = time.monotonic()
        self.last: tuple[str, int] | None = None
        self.live = sys.stderr.isatty()

    def __call__(self, run: Run) -> None:
        state = (run.status, run.attempt)
        elapsed = time.monotonic() - self.started
        if state != self.last:
            self.last = state
            end = "\n" if not self.live or run.finished else ""
            text = f"{elapsed:6.1f}s  run {self.run_id}: {run.status} (attempt {run.attempt})"
            print(("\r" if self.live else "") + text, end=end, file=sys.stderr, flush=True)
        elif self.live:
            text = f"{elapsed:6.1f}s  run {self.run_id}: {run.status} (attempt {run.attempt})"
            print("\r" + text, end="", file=sys.stderr, flush=True)


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
    _show_run(run, args)
    return EXIT_OK if run.status == "succeeded" else EXIT_RUN_FAILED


def _show_run(run: Run, args: argparse.Namespace) -> None:
    if args.json:
        _print_json(run.to_json())
    else:
        print(render_run(run))


def cmd_runs_show(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        if args.follow:
            return _follow(client, args.id, args)
        run = client.get_run(args.id)
    _show_run(run, args)
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
        _print_json(accepted.to_json())
    else:
        dup = " (duplicate: already accepted)" if accepted.duplicate else ""
        print(
            f"published event {accepted.event_id} on {accepted.topic}{dup}: "
            f"{accepted.tasks_matched} task(s) matched, {accepted.runs_queued} run(s) queued"
        )
    return EXIT_OK


# --- mcp -----------------------------------------------------------------------------------


def cmd_mcp(args: argparse.Namespace) -> int:
    from ordinaut import assistant_mcp

    conn = store.resolve(os.environ, url=args.url, token=args.token)
    return assistant_mcp.main(conn, transport=args.transport, host=args.host, port=args.port)


# --- the parsers ---------------------------------------------------------------------------


def _connection_flags(p: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    p.add_argument(
        "--url", metavar="URL", help="API base URL (default: $ORDINAUT_URL, the saved login)"
    )
    p.add_argument("--token", metavar="TOKEN", help="bearer token (default: $ORDINAUT_TOKEN)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print JSON for scripts")


def _follow_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="give up after S seconds (exit 7)"
    )
    p.add_argument(
        "--interval", type=float, default=0.5, metavar="S", help="poll every S seconds (0.5)"
    )


def _group(
    sub: SubParsers[argparse.ArgumentParser], factory: Factory, name: str, summary: str, ex: str
) -> SubParsers[argparse.ArgumentParser]:
    parser = factory(sub, name, summary, summary[0].upper() + summary[1:] + ".", ex)
    parser.epilog = f"{parser.epilog}\n\n{EXIT_CODES}"
    inner = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", title="commands")

    def missing(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    parser.set_defaults(func=missing)
    return inner


def _leaf(
    sub: SubParsers[argparse.ArgumentParser],
    factory: Factory,
    name: str,
    summary: str,
    ex: str,
    func: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    parser = factory(sub, name, summary, summary[0].upper() + summary[1:] + ".", ex)
    parser.epilog = f"{parser.epilog}\n\n{EXIT_CODES}"
    parser.set_defaults(func=func)
    return parser


def register(sub: SubParsers[argparse.ArgumentParser], factory: Factory) -> None:
    """Add login, tasks, runs, events and mcp to the ``ordinaut`` parser."""
    p = _leaf(
        sub,
        factory,
        "login",
        "save a credential for an Ordinaut server",
        "  ordinaut login --url http://127.0.0.1:8080 --agent-id ID --secret SECRET\n"
        '  echo "$SECRET" | ordinaut login --url https://ordinaut.example --agent-id ID --secret -\n'
        "  ordinaut login --url http://127.0.0.1:8080 --token TOKEN",
        cmd_login,
    )
    _connection_flags(p)
    p.add_argument("--agent-id", metavar="ID", help="agent id (exchanged for a token)")
    p.add_argument("--secret", metavar="SECRET", help="agent secret ('-' reads it from stdin)")
    p.description = (
        "Check a credential against the server and save it, per server URL, in\n"
        "$ORDINAUT_HOME/credentials.json or ~/.config/ordinaut/credentials.json (mode 0600).\n"
        "With an agent id and secret the token is renewed by itself when it expires."
    )

    tasks = _group(
        sub,
        factory,
        "tasks",
        "create, list, show and control tasks",
        "  ordinaut tasks create -f task.yaml\n  ordinaut tasks list --status active\n"
        "  ordinaut tasks show ID\n  ordinaut tasks run-now ID --follow",
    )
    p = _leaf(
        tasks,
        factory,
        "create",
        "create a task from a YAML or JSON file",
        "  ordinaut tasks create -f task.yaml\n  ordinaut tasks create -f - --json < task.json\n"
        "  ordinaut tasks create -f task.yaml --dry-run",
        cmd_tasks_create,
    )
    p.add_argument("-f", "--file", required=True, metavar="FILE", help="task file ('-' = stdin)")
    p.add_argument(
        "--dry-run", action="store_true", help="validate and render every step, create nothing"
    )
    _connection_flags(p)
    p = _leaf(
        tasks,
        factory,
        "list",
        "list your tasks with their next run",
        "  ordinaut tasks list\n  ordinaut tasks list --status paused --json",
        cmd_tasks_list,
    )
    p.add_argument("--status", choices=TASK_STATUSES, help="only tasks in this status")
    p.add_argument("--kind", choices=("cron", "rrule", "once", "event", "condition"))
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    p.add_argument("--all", action="store_true", help="every task, walking all pages")
    _connection_flags(p)
    p = _leaf(
        tasks,
        factory,
        "show",
        "show a task, its next fire times and recent runs",
        "  ordinaut tasks show ID\n  ordinaut tasks show ID --next 10 --runs 20",
        cmd_tasks_show,
    )
    p.add_argument("id", help="task id")
    p.add_argument("--next", type=int, default=5, metavar="N", help="fire times to show (5)")
    p.add_argument("--runs", type=int, default=5, metavar="N", help="recent runs to show (5)")
    _connection_flags(p)
    for action, summary in (
        ("pause", "pause a task: no new runs until resumed"),
        ("resume", "resume a paused task from its next fire time"),
        ("cancel", "cancel a task for good; queued runs are canceled"),
    ):
        p = _leaf(
            tasks, factory, action, summary, f"  ordinaut tasks {action} ID", _task_action(action)
        )
        p.add_argument("id", help="task id")
        _connection_flags(p)
    p = _leaf(
        tasks,
        factory,
        "run-now",
        "queue one run of a task now",
        "  ordinaut tasks run-now ID\n  ordinaut tasks run-now ID --follow --timeout 60",
        cmd_tasks_run_now,
    )
    p.add_argument("id", help="task id")
    p.add_argument("--follow", action="store_true", help="wait for the run and show it")
    _follow_flags(p)
    _connection_flags(p)

    runs = _group(
        sub,
        factory,
        "runs",
        "list runs and show one with its step results",
        "  ordinaut runs list --task ID\n  ordinaut runs show RUN_ID --follow",
    )
    p = _leaf(
        runs,
        factory,
        "list",
        "list runs, newest first",
        "  ordinaut runs list\n  ordinaut runs list --task ID --status failed --json",
        cmd_runs_list,
    )
    p.add_argument("--task", metavar="ID", help="only runs of this task")
    p.add_argument("--status", choices=RUN_STATUSES, help="only runs in this status")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")
    _connection_flags(p)
    p = _leaf(
        runs,
        factory,
        "show",
        "show a run with its step results",
        "  ordinaut runs show RUN_ID\n  ordinaut runs show RUN_ID --follow --timeout 120",
        cmd_runs_show,
    )
    p.add_argument("id", help="run id")
    p.add_argument(
        "--follow", action="store_true", help="stream its status until it ends (exit 6 unless ok)"
    )
    _follow_flags(p)
    _connection_flags(p)

    events = _group(
        sub,
        factory,
        "events",
        "publish events to event-triggered tasks",
        "  ordinaut events publish orders.created --data '{\"id\": 7}'",
    )
    p = _leaf(
        events,
        factory,
        "publish",
        "publish an event; matching event tasks run",
        "  ordinaut events publish orders.created --data '{\"id\": 7}'\n"
        "  ordinaut events publish deploy.done --event-id deploy-42",
        cmd_events_publish,
    )
    p.add_argument("topic", help="topic, e.g. orders.created")
    p.add_argument("--data", metavar="JSON", help="payload as JSON (default {})")
    p.add_argument("--event-id", metavar="ID", help="idempotency id: the API accepts it once")
    _connection_flags(p)

    p = _leaf(
        sub,
        factory,
        "mcp",
        "run an MCP server that gives an assistant Ordinaut's tools",
        "  ordinaut mcp                                   stdio, for a desktop assistant\n"
        "  ordinaut mcp --transport http --port 8765      streamable HTTP on 127.0.0.1",
        cmd_mcp,
    )
    p.description = (
        "Serve Ordinaut's tools (create_task, preview_schedule, list_tasks, get_run, ...) over\n"
        "the Model Context Protocol. The server calls the REST API at ORDINAUT_URL with\n"
        "ORDINAUT_TOKEN, or with the credential saved by `ordinaut login`."
    )
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    _connection_flags(p, json_flag=False)
