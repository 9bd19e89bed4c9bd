"""``ordinaut events publish``: publish an event; the event-triggered tasks that match it run."""

from __future__ import annotations

import argparse
import json

from ordinaut.cli.common import EXIT_OK, EXIT_USAGE, CommandError, SubParsers, group, leaf
from ordinaut.cli.output import print_json
from ordinaut.cli.rest import api_errors, connect, connection_flags


def cmd_events_publish(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.data) if args.data is not None else {}
    except ValueError as exc:
        raise CommandError(f"--data is not JSON: {exc}", EXIT_USAGE) from None
    with connect(args) as client, api_errors():
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


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    events = group(
        sub,
        "events",
        "publish events to event-triggered tasks",
        "  ordinaut events publish orders.created --data '{\"id\": 7}'",
    )
    p = leaf(
        events,
        "publish",
        "publish an event; matching event tasks run",
        "  ordinaut events publish orders.created --data '{\"id\": 7}'\n"
        "  ordinaut events publish deploy.done --event-id deploy-42",
        cmd_events_publish,
    )
    p.add_argument("topic", help="topic, e.g. orders.created")
    p.add_argument("--data", metavar="JSON", help="payload as JSON (default {})")
    p.add_argument("--event-id", metavar="ID", help="idempotency id: the API accepts it once")
    connection_flags(p)
