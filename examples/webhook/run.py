"""A webhook-triggered task, end to end, against a running Ordinaut (`make dev`).

    python examples/webhook/run.py

Creates the event task from task.yaml (topic ``deploys.*``), then plays the webhook sender:
POSTs two deploy events to /events, one of them twice (the repeat is accepted once and runs
nothing), waits for the two runs and prints each step's result, including the on-call page
that only the failed deploy triggers. Then deletes the task (``--keep`` leaves it).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

# examples/ is not a package: its shared modules are imported from the folder itself.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connection import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    Api,
    ApiError,
    add_connection_args,
    connect,
    load_task,
    show_run,
    wait_for_ctrl_c,
)

TASK_FILE = Path(__file__).with_name("task.yaml")
TOPIC = "deploys.finished"


def deploys() -> list[dict[str, Any]]:
    """Two webhook deliveries; the ids are what a sender would reuse on a redelivery."""
    batch = uuid.uuid4().hex[:8]
    return [
        {
            "topic": TOPIC,
            "event_id": f"deploy-{batch}-1",
            "payload": {
                "service": "billing",
                "version": "2.4.1",
                "environment": "production",
                "status": "succeeded",
                "actor": "ana",
            },
        },
        {
            "topic": TOPIC,
            "event_id": f"deploy-{batch}-2",
            "payload": {
                "service": "search",
                "version": "1.9.0",
                "environment": "production",
                "status": "failed",
                "actor": "dan",
            },
        },
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_connection_args(parser)
    args = parser.parse_args(argv)
    try:
        with connect(args) as api:
            return webhook(api, args)
    except ApiError as exc:
        print(exc.explain(), file=sys.stderr)
        return EXIT_RUN_FAILED


def webhook(api: Api, args: argparse.Namespace) -> int:
    """Create the event task, deliver the webhooks, show both runs; 0 when both succeeded."""
    task = api.create_task(load_task(TASK_FILE))
    print(f"created task {task['id']}: {task['title']!r}, on events {task['schedule_expr']!r}")
    try:
        events = deploys()
        for event in [*events, events[0]]:  # the first one is delivered twice
            accepted = api.call("POST", "/events", json=event)
            print(
                f"POST /events {event['event_id']}: duplicate={accepted['duplicate']}, "
                f"runs queued={accepted['runs_queued']}"
            )
        runs = api.wait_for_runs(task["id"], len(events), args.timeout)
        print()
        for run in runs:
            print(f"event {run['event_id']}:")
            show_run(run)
            steps = {s["id"]: s for s in run.get("step_results") or []}
            if "announce" in steps:
                print(f"  announced: {steps['announce']['output']}")
            page = steps.get("page_oncall")
            if page and page["status"] == "succeeded":
                print(f"  paged {page['output']['to']}: {page['output']['text']}")
        ok = len(runs) == len(events) and all(r["status"] == "succeeded" for r in runs)
        print("\nThe same webhook with curl (any token with the events:publish scope):\n")
        print(
            f'  curl -X POST {api.url}/events -H "Authorization: Bearer $TOKEN" \\\n'
            "    -H 'Content-Type: application/json' \\\n"
            f'    -d \'{{"topic": "{TOPIC}", "event_id": "deploy-123", '
            '"payload": {"service": "api", "version": "3.0.0", "environment": "staging", '
            '"status": "succeeded", "actor": "you"}}\''
        )
        if args.keep and ok:
            wait_for_ctrl_c("The task stays subscribed to deploys.*; Ctrl-C ends this script.")
        return EXIT_OK if ok else EXIT_RUN_FAILED
    finally:
        if not args.keep:
            api.delete_task(task["id"])
            print(f"deleted task {task['id']} (--keep leaves it subscribed)")


if __name__ == "__main__":
    sys.exit(main())
