"""``ordinaut tasks``: create, list, show, pause, resume, cancel and run-now here; update,
preview and delete in ``tasks_edit``, which registers them into this group."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ordinaut.cli import tasks_edit
from ordinaut.cli.common import (
    EXIT_OK,
    SubParsers,
    group,
    label_flag,
    labels_of,
    leaf,
)
from ordinaut.cli.output import (
    RUN_HEADERS,
    TASK_HEADERS,
    in_words,
    next_run,
    print_fire_times,
    print_json,
    print_next,
    run_row,
    table,
    task_row,
    utc,
)
from ordinaut.cli.rest import (
    api_errors,
    connect,
    connection_flags,
    follow,
    follow_flags,
    read_task_file,
)
from ordinaut.vocabulary import SCHEDULE_KINDS, TASK_STATUSES

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
  labels: {user: ana}                      # optional: up to 16; --label user=ana sets them

A file that does not parse is reported with its line and column; a task the API refuses
is reported field by field (exit 2)."""


def cmd_tasks_create(args: argparse.Namespace) -> int:
    body = read_task_file(args.file)
    labels = labels_of(args)
    if labels is not None:  # the flags are the task's labels, like any flag over the file
        body["labels"] = labels
    with connect(args) as client, api_errors():
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
    print(f"  {in_words(task.schedule_kind, task.schedule_expr, task.timezone)}")
    print_next(preview, task.timezone)
    return EXIT_OK


def cmd_tasks_list(args: argparse.Namespace) -> int:
    with connect(args) as client, api_errors():
        labels = labels_of(args)
        if args.all:
            tasks = list(
                client.iter_tasks(
                    status=args.status, schedule_kind=args.kind, search=args.search, labels=labels
                )
            )
            total = len(tasks)
        else:
            page = client.list_tasks(
                status=args.status,
                schedule_kind=args.kind,
                limit=args.limit,
                search=args.search,
                labels=labels,
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
    with connect(args) as client, api_errors():
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
    words = in_words(task.schedule_kind, task.schedule_expr, task.timezone)
    print(f"  schedule    {words}  [{task.schedule_kind} '{task.schedule_expr}']")
    if not active:  # no fires were asked for: a paused or finished task will not run
        print(f"  next runs   {next_run(task)}: nothing runs until it is resumed")
    elif fires or task.schedule_kind not in ("event", "condition"):
        print_fire_times(fires, task.timezone, "next runs")
    print(f"  pipeline    {len(steps)} step(s): {pipeline or '-'}")
    if task.labels:
        print(f"  labels      {', '.join(f'{k}={v}' for k, v in sorted(task.labels.items()))}")
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
        with connect(args) as client, api_errors():
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
    with connect(args) as client, api_errors():
        queued = client.run_task_now(args.id)
        if args.follow:
            return follow(client, queued.run_id, args)
    if args.json:
        print_json(queued.to_json())
    else:
        print(f"queued run {queued.run_id} of task {queued.task_id}")
        print(f"  follow it with: ordinaut runs show {queued.run_id} --follow")
    return EXIT_OK


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    tasks = group(
        sub,
        "tasks",
        "create, list, show, change and control tasks",
        "  ordinaut tasks create -f task.yaml\n  ordinaut tasks list --status active\n"
        "  ordinaut tasks show ID\n  ordinaut tasks update ID --schedule '0 9 * * 1-5'\n"
        "  ordinaut tasks preview ID\n  ordinaut tasks run-now ID --follow\n"
        "  ordinaut tasks delete ID --yes",
    )
    p = leaf(
        tasks,
        "create",
        "create a task from a YAML or JSON file",
        "  ordinaut tasks create -f task.yaml\n  ordinaut tasks create -f - --json < task.json\n"
        "  ordinaut tasks create -f task.yaml --dry-run",
        cmd_tasks_create,
    )
    p.description = f"Create a task from a YAML or JSON file.\n\n{TASK_FILE_FORMAT}"
    p.add_argument("-f", "--file", required=True, metavar="FILE", help="task file ('-' = stdin)")
    label_flag(p, "a label, repeatable; given, they replace the file's labels")
    p.add_argument(
        "--dry-run", action="store_true", help="validate and render every step, create nothing"
    )
    connection_flags(p)
    p = leaf(
        tasks,
        "list",
        "list your tasks with their next run",
        "  ordinaut tasks list\n  ordinaut tasks list --status paused --json\n"
        "  ordinaut tasks list --search briefing\n"
        "  ordinaut tasks list --label user=ana --label kind=daily      both labels",
        cmd_tasks_list,
    )
    p.add_argument("--status", choices=TASK_STATUSES, help="only tasks in this status")
    p.add_argument("--kind", choices=SCHEDULE_KINDS, help="only tasks with this schedule kind")
    p.add_argument("--search", metavar="TEXT", help="only tasks whose title contains TEXT")
    label_flag(p, "only tasks with this label; repeated: tasks with every one")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    p.add_argument("--all", action="store_true", help="every task, walking all pages")
    connection_flags(p)
    p = leaf(
        tasks,
        "show",
        "show a task, its next fire times and recent runs",
        "  ordinaut tasks show ID\n  ordinaut tasks show ID --next 10 --runs 20",
        cmd_tasks_show,
    )
    p.add_argument("id", help="task id")
    p.add_argument("--next", type=int, default=5, metavar="N", help="fire times to show (5)")
    p.add_argument("--runs", type=int, default=5, metavar="N", help="recent runs to show (5)")
    connection_flags(p)
    for action, summary, command in (
        ("pause", "pause a task: no new runs until resumed", cmd_tasks_pause),
        ("resume", "resume a paused task from its next fire time", cmd_tasks_resume),
        ("cancel", "cancel a task for good; queued runs are canceled", cmd_tasks_cancel),
    ):
        p = leaf(tasks, action, summary, f"  ordinaut tasks {action} ID", command)
        p.add_argument("id", help="task id")
        connection_flags(p)
    p = leaf(
        tasks,
        "run-now",
        "queue one run of a task now",
        "  ordinaut tasks run-now ID\n  ordinaut tasks run-now ID --follow --timeout 60",
        cmd_tasks_run_now,
    )
    p.add_argument("id", help="task id")
    p.add_argument("--follow", action="store_true", help="wait for the run and show it")
    follow_flags(p)
    connection_flags(p)
    tasks_edit.register(tasks)
