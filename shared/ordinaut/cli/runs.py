"""``ordinaut runs retry / cancel``: act on one run (parsers in ``cli_tasks_parser``)."""

from __future__ import annotations

import argparse

from ordinaut.cli import EXIT_OK
from ordinaut.cli.output import print_json
from ordinaut.cli.tasks import _client, _follow, api_errors, task_title


def cmd_runs_retry(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        run = client.retry_run(args.id)
        if args.follow:
            return _follow(client, run.id, args)
        title = None if args.json else task_title(client, run.task_id)
    if args.json:
        print_json(run.to_json())
    else:
        print(f"run {run.id} of {title} is {run.status} again (attempt {run.attempt})")
        print(f"  follow it with: ordinaut runs show {run.id} --follow")
    return EXIT_OK


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client, api_errors():
        run = client.cancel_run(args.id)
        title = None if args.json else task_title(client, run.task_id)
    if args.json:
        print_json(run.to_json())
    else:
        print(f"run {run.id} of {title} is {run.status}")
    return EXIT_OK
