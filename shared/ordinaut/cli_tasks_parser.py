"""Parsers of login, tasks, runs, events and mcp, and their exit codes.

Only argparse here: the commands (``cli_tasks``, with httpx and pydantic) are imported when one
runs, so ``ordinaut --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from ordinaut.cli import EXIT_USAGE, _int_in
from ordinaut.vocabulary import (
    BACKOFF_STRATEGIES,
    MISFIRE_POLICIES,
    OVERLAP_POLICIES,
    RUN_STATUSES,
    SCHEDULE_KINDS,
    TASK_STATUSES,
)

# The exit codes are explained once, in `ordinaut --help`; each page points there.
EXIT_CODES = "exit codes: listed once, in `ordinaut --help`"

SubParsers = argparse._SubParsersAction  # the type argparse gives add_subparsers()
Factory = Callable[..., argparse.ArgumentParser]


def lazy(name: str, module: str = "ordinaut.cli_tasks") -> Callable[[argparse.Namespace], int]:
    """The command ``<module>.<name>``, imported when it runs."""

    def run(args: argparse.Namespace) -> int:
        command: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), name
        )
        return command(args)

    return run


EDIT = "ordinaut.cli_tasks_edit"  # tasks update / delete / preview
RUNS = "ordinaut.cli_runs"  # runs retry / cancel

TASK_FILE_FORMAT = """\
The file is the body of POST /tasks, as YAML or JSON ('-' reads it from stdin):

  title: Morning briefing                  # required, 1-200 characters
  description: weather for the day         # optional
  schedule_kind: cron                      # cron | rrule | once | event | condition
  schedule_expr: "0 8 * * 1-5"             # weekdays at 08:00 (rrule: FREQ=...; once: an
                                           #   ISO instant; event: a topic like orders.*)
  timezone: Europe/Chisinau                # IANA name the schedule is read in (default UTC)
  payload:
    params: {city: Chisinau}
    pipeline:                              # the steps, run in order
      - id: say
        uses: echo                         # a tool: `GET /tools` lists them
        with: {text: "weather in ${params.city}"}
  priority: 5                              # optional: 1-9, max_retries, backoff_strategy,
  max_retries: 3                           #   misfire_policy, overlap_policy, dedupe_key, ...

A file that does not parse is reported with its line and column; a task the API refuses
is reported field by field (exit 2)."""
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
    """Add login, tasks, runs, events, mcp and admin to the ``ordinaut`` parser."""
    p = _leaf(
        sub,
        factory,
        "login",
        "save a credential for an Ordinaut server",
        "  ordinaut login --url http://127.0.0.1:8080 --agent-id ID --secret SECRET\n"
        '  echo "$SECRET" | ordinaut login --url https://ordinaut.example --agent-id ID --secret -\n'
        "  ordinaut login --url http://127.0.0.1:8080 --token TOKEN",
        lazy("cmd_login"),
    )
    _connection_flags(p)
    p.add_argument("--agent-id", metavar="ID", help="agent id (exchanged for a token)")
    p.add_argument(
        "--secret",
        metavar="SECRET",
        help="agent secret ('-' reads it from stdin; write --secret=S for one that starts with '-')",
    )
    p.description = (
        "Check a credential against the server and save it, per server URL, in\n"
        "$ORDINAUT_HOME/credentials.json or ~/.config/ordinaut/credentials.json (mode 0600).\n"
        "With an agent id and secret the token is renewed by itself when it expires."
    )

    tasks = _group(
        sub,
        factory,
        "tasks",
        "create, list, show, change and control tasks",
        "  ordinaut tasks create -f task.yaml\n  ordinaut tasks list --status active\n"
        "  ordinaut tasks show ID\n  ordinaut tasks update ID --schedule '0 9 * * 1-5'\n"
        "  ordinaut tasks preview ID\n  ordinaut tasks run-now ID --follow\n"
        "  ordinaut tasks delete ID --yes",
    )
    p = _leaf(
        tasks,
        factory,
        "create",
        "create a task from a YAML or JSON file",
        "  ordinaut tasks create -f task.yaml\n  ordinaut tasks create -f - --json < task.json\n"
        "  ordinaut tasks create -f task.yaml --dry-run",
        lazy("cmd_tasks_create"),
    )
    p.description = f"Create a task from a YAML or JSON file.\n\n{TASK_FILE_FORMAT}"
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
        "  ordinaut tasks list\n  ordinaut tasks list --status paused --json\n"
        "  ordinaut tasks list --search briefing",
        lazy("cmd_tasks_list"),
    )
    p.add_argument("--status", choices=TASK_STATUSES, help="only tasks in this status")
    p.add_argument("--kind", choices=SCHEDULE_KINDS, help="only tasks with this schedule kind")
    p.add_argument("--search", metavar="TEXT", help="only tasks whose title contains TEXT")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    p.add_argument("--all", action="store_true", help="every task, walking all pages")
    _connection_flags(p)
    p = _leaf(
        tasks,
        factory,
        "show",
        "show a task, its next fire times and recent runs",
        "  ordinaut tasks show ID\n  ordinaut tasks show ID --next 10 --runs 20",
        lazy("cmd_tasks_show"),
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
            tasks,
            factory,
            action,
            summary,
            f"  ordinaut tasks {action} ID",
            lazy(f"cmd_tasks_{action}"),
        )
        p.add_argument("id", help="task id")
        _connection_flags(p)
    p = _leaf(
        tasks,
        factory,
        "run-now",
        "queue one run of a task now",
        "  ordinaut tasks run-now ID\n  ordinaut tasks run-now ID --follow --timeout 60",
        lazy("cmd_tasks_run_now"),
    )
    p.add_argument("id", help="task id")
    p.add_argument("--follow", action="store_true", help="wait for the run and show it")
    _follow_flags(p)
    _connection_flags(p)
    _task_edit_parsers(tasks, factory)

    runs = _group(
        sub,
        factory,
        "runs",
        "list runs, show one with its step results, retry or cancel one",
        "  ordinaut runs list --task ID\n  ordinaut runs list --status dead_letter\n"
        "  ordinaut runs show RUN_ID --follow\n  ordinaut runs retry RUN_ID",
    )
    p = _leaf(
        runs,
        factory,
        "list",
        "list runs, newest first",
        "  ordinaut runs list\n  ordinaut runs list --task ID --status failed --json",
        lazy("cmd_runs_list"),
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
        lazy("cmd_runs_show"),
    )
    p.add_argument("id", help="run id")
    p.add_argument(
        "--follow", action="store_true", help="stream its status until it ends (exit 6 unless ok)"
    )
    _follow_flags(p)
    _connection_flags(p)
    for action, summary, more in (
        (
            "retry",
            "requeue a failed or dead-lettered run now, with a fresh retry budget",
            "  ordinaut runs retry RUN_ID --follow",
        ),
        (
            "cancel",
            "cancel a queued or running run (a running attempt's result is discarded)",
            "",
        ),
    ):
        p = _leaf(
            runs,
            factory,
            action,
            summary,
            f"  ordinaut runs {action} RUN_ID\n{more}".rstrip(),
            lazy(f"cmd_runs_{action}", RUNS),
        )
        p.add_argument("id", help="run id")
        if action == "retry":
            p.add_argument(
                "--follow", action="store_true", help="wait for the retried run and show it"
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
        lazy("cmd_events_publish"),
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
        lazy("cmd_mcp"),
    )
    p.description = (
        "Serve Ordinaut's tools (create_task, preview_schedule, list_tasks, get_run, ...) over\n"
        "the Model Context Protocol. The server calls the REST API at ORDINAUT_URL with\n"
        "ORDINAUT_TOKEN, or with the credential saved by `ordinaut login`."
    )
    p.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio (the assistant starts the server) or streamable HTTP (default stdio)",
    )
    p.add_argument("--host", default="127.0.0.1", help="HTTP interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    _connection_flags(p, json_flag=False)

    p = _leaf(
        sub,
        factory,
        "admin",
        "the operator's view: queue, schedulers, workers, dead letters (admin)",
        "  ordinaut admin\n  ordinaut admin --dead-letters 100 --json\n"
        "  ordinaut admin --retry RUN_ID [--retry RUN_ID ...]",
        lazy("cmd_admin", "ordinaut.cli_admin"),
    )
    p.description = (
        "Show what an operator checks first, over the REST API with an admin credential:\n"
        "due work by state (due, scheduled, running) and how long the oldest due row waits,\n"
        "each scheduler's last tick, the workers (live ones first) with the runs each holds,\n"
        "and the dead letters of every agent. --retry requeues a dead-lettered (or failed)\n"
        "run of any agent with a fresh retry budget."
    )
    p.add_argument(
        "--retry",
        action="append",
        metavar="RUN_ID",
        help="requeue this dead-lettered or failed run (repeat for several)",
    )
    p.add_argument(
        "--dead-letters",
        type=_int_in(1, 500, "count"),
        default=20,
        metavar="N",
        help="dead letters to list, newest first (default 20, at most 500)",
    )
    _connection_flags(p)


def _schedule_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schedule-kind", choices=SCHEDULE_KINDS, help="the schedule's kind")
    p.add_argument(
        "--schedule",
        dest="schedule_expr",
        metavar="EXPR",
        help="the schedule expression, e.g. '0 8 * * 1-5' (cron) or 'FREQ=DAILY' (rrule)",
    )
    p.add_argument("--timezone", metavar="TZ", help="IANA time zone, e.g. Europe/Chisinau")


def _task_edit_parsers(tasks: SubParsers[argparse.ArgumentParser], factory: Factory) -> None:
    """tasks update, preview and delete (``cli_tasks_edit``)."""
    p = _leaf(
        tasks,
        factory,
        "update",
        "change some fields of a task (from a file or flags)",
        "  ordinaut tasks update ID --title 'Morning briefing (weekends too)' --schedule '0 8 * * *'\n"
        "  ordinaut tasks update ID -f changes.yaml\n"
        "  ordinaut tasks update ID -f task.yaml --priority 2      flags win over the file",
        lazy("cmd_tasks_update", EDIT),
    )
    p.description = (
        "Change only the fields given (PATCH): every other field keeps its value. The file\n"
        "holds any of the fields of `ordinaut tasks create --help`; a flag overrides the\n"
        "same field in the file. A new schedule or pipeline is validated like a new task's\n"
        "and takes effect from the next tick."
    )
    p.add_argument("id", help="task id")
    p.add_argument("-f", "--file", metavar="FILE", help="YAML or JSON with the fields to change")
    p.add_argument("--title", metavar="TEXT", help="new title (1-200 characters)")
    p.add_argument("--description", metavar="TEXT", help="new description")
    _schedule_flags(p)
    p.add_argument("--priority", type=int, metavar="N", help="1 (first) to 9")
    p.add_argument("--max-retries", type=int, metavar="N", help="retries after a failed attempt")
    p.add_argument(
        "--backoff",
        dest="backoff_strategy",
        choices=BACKOFF_STRATEGIES,
        help="wait between retries",
    )
    p.add_argument(
        "--misfire",
        dest="misfire_policy",
        choices=MISFIRE_POLICIES,
        help="what happens to fire times missed while nothing ran",
    )
    p.add_argument(
        "--overlap",
        dest="overlap_policy",
        choices=OVERLAP_POLICIES,
        help="what happens when a run is due while the previous one still runs",
    )
    _connection_flags(p)

    p = _leaf(
        tasks,
        factory,
        "preview",
        "show when a task, a task file or a schedule would fire",
        "  ordinaut tasks preview ID --next 10\n  ordinaut tasks preview -f task.yaml\n"
        "  ordinaut tasks preview --schedule-kind cron --schedule '0 8 * * 1-5' "
        "--timezone Europe/Chisinau",
        lazy("cmd_tasks_preview", EDIT),
    )
    p.description = (
        "The next fire times, computed by the scheduler's own code, in the task's time zone\n"
        "and in UTC. Give a task id, a task file (nothing is created), or a schedule as flags\n"
        "(flags override the file's schedule fields). A paused task has no next runs; its\n"
        "preview says so and shows when it would fire once resumed."
    )
    p.add_argument("id", nargs="?", help="task id (or give -f or the schedule flags)")
    p.add_argument("-f", "--file", metavar="FILE", help="a task file ('-' = stdin)")
    _schedule_flags(p)
    p.add_argument("--next", type=int, default=5, metavar="N", help="fire times to show (5)")
    _connection_flags(p)

    p = _leaf(
        tasks,
        factory,
        "delete",
        "delete a task and its run history for good",
        "  ordinaut tasks delete ID\n  ordinaut tasks delete ID --yes      no question (scripts)",
        lazy("cmd_tasks_delete", EDIT),
    )
    p.description = (
        "Delete a task with its runs. On a terminal it names the task and asks first;\n"
        "elsewhere (scripts, pipes) --yes is required. To stop a task but keep its history,\n"
        "use `ordinaut tasks cancel`."
    )
    p.add_argument("id", help="task id")
    p.add_argument("-y", "--yes", action="store_true", help="delete without asking")
    _connection_flags(p)
