"""``ordinaut tasks update / preview / delete``: change a task, see when it fires, remove it.

Parsers are in ``cli_tasks_parser``; connection, error mapping and file reading are shared
with the other task commands in ``cli_tasks``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ordinaut.cli import EXIT_OK, EXIT_USAGE, CommandError
from ordinaut.cli.output import print_fire_times, print_json, print_next
from ordinaut.cli.tasks import _client, api_errors, read_task_file
from ordinaut.client import FireTimes, Task
from ordinaut.client.words import describe_schedule

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
    if not changes:
        raise CommandError(
            "nothing to change: give -f FILE or a flag such as --title or --schedule "
            "(see `ordinaut tasks update --help`)",
            EXIT_USAGE,
        )
    with _client(args) as client, api_errors():
        task = client.patch_task(args.id, changes)
        fires = client.preview_task(task.id, limit=3) if task.status == "active" else None
    if args.json:
        print_json(task.to_json())
        return EXIT_OK
    print(f"updated task {task.id}  {task.title} ({task.status}): {', '.join(sorted(changes))}")
    print(f"  {describe_schedule(task.schedule_kind, task.schedule_expr, task.timezone)}")
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
    with _client(args) as client, api_errors():
        fires = client.preview_schedule(kind, expr, zone, limit=args.next)
    if args.json:
        print_json(fires.to_json())
        return EXIT_OK
    print(describe_schedule(kind, expr, zone))
    print_fire_times(fires.fire_times, zone, "next runs")
    return EXIT_OK


def _preview_task(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        task = client.get_task(args.id)
        fires = client.preview_task(task.id, limit=args.next)
    active = task.status == "active"
    if args.json:
        print_json({"task_id": task.id, "status": task.status, **fires.to_json()})
        return EXIT_OK
    print(f"task {task.id}  {task.title} ({task.status})")
    print(f"  {describe_schedule(task.schedule_kind, task.schedule_expr, task.timezone)}")
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
    with _client(args) as client, api_errors():
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
