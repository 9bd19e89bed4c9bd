"""``ordinaut tasks update / preview / delete``: change a task, see when it fires, remove it.

``tasks`` registers the group and calls ``register`` here for these three subcommands.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ordinaut.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    SubParsers,
    label_flag,
    labels_of,
    leaf,
)
from ordinaut.cli.output import in_words, print_fire_times, print_json, print_next
from ordinaut.cli.rest import api_errors, connect, connection_flags, read_task_file
from ordinaut.vocabulary import (
    BACKOFF_STRATEGIES,
    MISFIRE_POLICIES,
    OVERLAP_POLICIES,
    SCHEDULE_KINDS,
)

if TYPE_CHECKING:
    from ordinaut.client import FireTimes, Task

# Flags of `tasks update`, by the task field each one sets.
UPDATE_FIELDS = (
    "title",
    "description",
    "schedule_kind",
    "schedule_expr",
    "timezone",
    "priority",
    "max_retries",
    "backoff_strategy",
    "misfire_policy",
    "overlap_policy",
)
SCHEDULE_FIELDS = ("schedule_kind", "schedule_expr", "timezone")


def _flags(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def cmd_tasks_update(args: argparse.Namespace) -> int:
    changes = read_task_file(args.file) if args.file else {}
    changes.update(_flags(args, UPDATE_FIELDS))
    labels = labels_of(args)
    if labels is not None and args.clear_labels:
        raise CommandError("give --label or --clear-labels, not both", EXIT_USAGE)
    if labels is not None or args.clear_labels:
        changes["labels"] = labels or {}  # the task's whole map: it replaces the old one
    if not changes:
        raise CommandError(
            "nothing to change: give -f FILE or a flag such as --title or --schedule "
            "(see `ordinaut tasks update --help`)",
            EXIT_USAGE,
        )
    with connect(args) as client, api_errors():
        task = client.patch_task(args.id, changes)
        fires = client.preview_task(task.id, limit=3) if task.status == "active" else None
    if args.json:
        print_json(task.to_json())
        return EXIT_OK
    print(f"updated task {task.id}  {task.title} ({task.status}): {', '.join(sorted(changes))}")
    print(f"  {in_words(task.schedule_kind, task.schedule_expr, task.timezone)}")
    _print_next(task, fires)
    return EXIT_OK


def _print_next(task: Task, fires: FireTimes | None) -> None:
    if fires is None:
        print(f"  no next runs while {task.status}")
        return
    print_next(fires.fire_times, task.timezone)


def cmd_tasks_preview(args: argparse.Namespace) -> int:
    if args.next < 1 or args.next > 1000:
        raise CommandError("--next must be 1..1000", EXIT_USAGE)
    if args.id and (args.file or _flags(args, SCHEDULE_FIELDS)):
        raise CommandError("give a task id, or a file / schedule flags, not both", EXIT_USAGE)
    if args.id:
        return _preview_task(args)
    schedule = read_task_file(args.file) if args.file else {}
    schedule = {k: schedule[k] for k in SCHEDULE_FIELDS if k in schedule}
    schedule.update(_flags(args, SCHEDULE_FIELDS))
    missing = [k for k in ("schedule_kind", "schedule_expr") if k not in schedule]
    if missing:
        where = "the file has no" if args.file else "give a task id, -f FILE, or"
        flags = " and ".join(f"--{k.replace('_expr', '').replace('_', '-')}" for k in missing)
        raise CommandError(f"{where} {flags}", EXIT_USAGE)
    kind, expr = str(schedule["schedule_kind"]), str(schedule["schedule_expr"])
    zone = str(schedule.get("timezone") or "UTC")
    with connect(args) as client, api_errors():
        fires = client.preview_schedule(kind, expr, zone, limit=args.next)
    if args.json:
        print_json(fires.to_json())
        return EXIT_OK
    print(in_words(kind, expr, zone))
    print_fire_times(fires.fire_times, zone, "next runs")
    return EXIT_OK


def _preview_task(args: argparse.Namespace) -> int:
    with connect(args) as client, api_errors():
        task = client.get_task(args.id)
        fires = client.preview_task(task.id, limit=args.next)
    active = task.status == "active"
    if args.json:
        print_json({"task_id": task.id, "status": task.status, **fires.to_json()})
        return EXIT_OK
    print(f"task {task.id}  {task.title} ({task.status})")
    print(f"  {in_words(task.schedule_kind, task.schedule_expr, task.timezone)}")
    if task.schedule_kind in ("event", "condition"):
        print("  runs when its trigger happens: no fire times to show")
        return EXIT_OK
    if not active:
        what = {
            "paused": f"paused: no runs until `ordinaut tasks resume {task.id}`",
            "canceled": "canceled: it will not run again",
            "completed": "completed: it will not run again",
        }.get(task.status, task.status)
        print(f"  {what}")
        if task.status != "paused":
            return EXIT_OK
    print_fire_times(fires.fire_times, task.timezone, "next runs" if active else "if resumed")
    return EXIT_OK


def cmd_tasks_delete(args: argparse.Namespace) -> int:
    with connect(args) as client, api_errors():
        task = client.get_task(args.id)
        if not args.yes:
            _confirm(task)
        client.delete_task(task.id)
    if args.json:
        print_json({"deleted": task.id, "title": task.title})
    else:
        print(f"deleted task {task.id}  {task.title}")
    return EXIT_OK


def _confirm(task: Task) -> None:
    if not sys.stdin.isatty():
        raise CommandError(
            f"not deleting task {task.id} ({task.title!r}) without --yes "
            "(there is no terminal to ask)",
            EXIT_USAGE,
        )
    answer = input(f"delete task {task.id} ({task.title!r}) and all its runs? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError("not deleted", EXIT_USAGE)


# --- the parsers ---------------------------------------------------------------------------


def _schedule_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schedule-kind", choices=SCHEDULE_KINDS, help="the schedule's kind")
    p.add_argument(
        "--schedule",
        dest="schedule_expr",
        metavar="EXPR",
        help="the schedule expression, e.g. '0 8 * * 1-5' (cron) or 'FREQ=DAILY' (rrule)",
    )
    p.add_argument("--timezone", metavar="TZ", help="IANA time zone, e.g. Europe/Chisinau")


def register(tasks: SubParsers[argparse.ArgumentParser]) -> None:
    """Add update, preview and delete to the ``ordinaut tasks`` group."""
    p = leaf(
        tasks,
        "update",
        "change some fields of a task (from a file or flags)",
        "  ordinaut tasks update ID --title 'Morning briefing (weekends too)' --schedule '0 8 * * *'\n"
        "  ordinaut tasks update ID -f changes.yaml\n"
        "  ordinaut tasks update ID -f task.yaml --priority 2      flags win over the file\n"
        "  ordinaut tasks update ID --label user=ana --label team=ops   these labels, no others",
        cmd_tasks_update,
    )
    p.description = (
        "Change only the fields given (PATCH): every other field keeps its value. The file\n"
        "holds any of the fields of `ordinaut tasks create --help`; a flag overrides the\n"
        "same field in the file. A new schedule or pipeline is validated like a new task's\n"
        "and takes effect from the next tick. Labels are one field: --label flags (or the\n"
        "file's labels) replace every label of the task; --clear-labels removes them all."
    )
    p.add_argument("id", help="task id")
    p.add_argument("-f", "--file", metavar="FILE", help="YAML or JSON with the fields to change")
    p.add_argument("--title", metavar="TEXT", help="new title (1-200 characters)")
    p.add_argument("--description", metavar="TEXT", help="new description")
    _schedule_flags(p)
    label_flag(p, "a label, repeatable: the task's labels become exactly these")
    p.add_argument("--clear-labels", action="store_true", help="remove every label")
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
    connection_flags(p)

    p = leaf(
        tasks,
        "preview",
        "show when a task, a task file or a schedule would fire",
        "  ordinaut tasks preview ID --next 10\n  ordinaut tasks preview -f task.yaml\n"
        "  ordinaut tasks preview --schedule-kind cron --schedule '0 8 * * 1-5' "
        "--timezone Europe/Chisinau",
        cmd_tasks_preview,
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
    connection_flags(p)

    p = leaf(
        tasks,
        "delete",
        "delete a task and its run history for good",
        "  ordinaut tasks delete ID\n  ordinaut tasks delete ID --yes      no question (scripts)",
        cmd_tasks_delete,
    )
    p.description = (
        "Delete a task with its runs. On a terminal it names the task and asks first;\n"
        "elsewhere (scripts, pipes) --yes is required. To stop a task but keep its history,\n"
        "use `ordinaut tasks cancel`."
    )
    p.add_argument("id", help="task id")
    p.add_argument("-y", "--yes", action="store_true", help="delete without asking")
    connection_flags(p)
