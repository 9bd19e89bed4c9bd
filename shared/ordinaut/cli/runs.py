"""``ordinaut runs list | show | retry | cancel``: runs with their step results, and acting on
one run."""

from __future__ import annotations

import argparse

from ordinaut.cli.common import EXIT_OK, SubParsers, group, leaf
from ordinaut.cli.output import RUN_HEADERS, print_json, run_row, table
from ordinaut.cli.rest import (
    api_errors,
    connect,
    connection_flags,
    follow,
    follow_flags,
    show_run,
    task_title,
    task_titles,
)
from ordinaut.vocabulary import RUN_STATUSES


def cmd_runs_list(args: argparse.Namespace) -> int:
    with connect(args) as client, api_errors():
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


def cmd_runs_show(args: argparse.Namespace) -> int:
    with connect(args) as client, api_errors():
        if args.follow:
            return follow(client, args.id, args)
        run = client.get_run(args.id)
        show_run(client, run, args)
    return EXIT_OK


def cmd_runs_retry(args: argparse.Namespace) -> int:
    with connect(args) as client, api_errors():
        run = client.retry_run(args.id)
        if args.follow:
            return follow(client, run.id, args)
        title = None if args.json else task_title(client, run.task_id)
    if args.json:
        print_json(run.to_json())
    else:
        print(f"run {run.id} of {title} is {run.status} again (attempt {run.attempt})")
        print(f"  follow it with: ordinaut runs show {run.id} --follow")
    return EXIT_OK


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    with connect(args) as client, api_errors():
        run = client.cancel_run(args.id)
        title = None if args.json else task_title(client, run.task_id)
    if args.json:
        print_json(run.to_json())
    else:
        print(f"run {run.id} of {title} is {run.status}")
    return EXIT_OK


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    runs = group(
        sub,
        "runs",
        "list runs, show one with its step results, retry or cancel one",
        "  ordinaut runs list --task ID\n  ordinaut runs list --status dead_letter\n"
        "  ordinaut runs show RUN_ID --follow\n  ordinaut runs retry RUN_ID",
    )
    p = leaf(
        runs,
        "list",
        "list runs, newest first",
        "  ordinaut runs list\n  ordinaut runs list --task ID --status failed --json",
        cmd_runs_list,
    )
    p.add_argument("--task", metavar="ID", help="only runs of this task")
    p.add_argument("--status", choices=RUN_STATUSES, help="only runs in this status")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")
    connection_flags(p)
    p = leaf(
        runs,
        "show",
        "show a run with its step results",
        "  ordinaut runs show RUN_ID\n  ordinaut runs show RUN_ID --follow --timeout 120",
        cmd_runs_show,
    )
    p.add_argument("id", help="run id")
    p.add_argument(
        "--follow", action="store_true", help="stream its status until it ends (exit 6 unless ok)"
    )
    follow_flags(p)
    connection_flags(p)
    p = leaf(
        runs,
        "retry",
        "requeue a failed or dead-lettered run now, with a fresh retry budget",
        "  ordinaut runs retry RUN_ID\n  ordinaut runs retry RUN_ID --follow",
        cmd_runs_retry,
    )
    p.add_argument("id", help="run id")
    p.add_argument("--follow", action="store_true", help="wait for the retried run and show it")
    follow_flags(p)
    connection_flags(p)
    p = leaf(
        runs,
        "cancel",
        "cancel a queued or running run (a running attempt's result is discarded)",
        "  ordinaut runs cancel RUN_ID",
        cmd_runs_cancel,
    )
    p.add_argument("id", help="run id")
    connection_flags(p)
