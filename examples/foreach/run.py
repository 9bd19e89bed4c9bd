"""A foreach over a list, end to end, against a running Ordinaut (`make dev`).

    python examples/foreach/run.py

Creates the Monday-09:00 task from task.yaml, shows its next fire times, runs it once now and
prints what each item of the two foreach steps did: every invoice checked (one of them has a
bad date and fails alone, the others go on) and one reminder published per overdue invoice.
Then deletes the task (``--keep`` leaves it scheduled).
"""

from __future__ import annotations

import argparse
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_connection_args(parser)
    args = parser.parse_args(argv)
    try:
        with connect(args) as api:
            return reminders(api, args)
    except ApiError as exc:
        print(exc.explain(), file=sys.stderr)
        return EXIT_RUN_FAILED


def reminders(api: Api, args: argparse.Namespace) -> int:
    """Create the task, run it once now, show each item; 0 when the run succeeded."""
    body = load_task(TASK_FILE)
    task = api.create_task(body)
    print(f"created task {task['id']}: {task['title']!r}")
    print(f"  {task['schedule_kind']} {task['schedule_expr']!r} in {task['timezone']}; next:")
    for instant in api.fire_times(task["id"]):
        print(f"    {instant}")
    try:
        run = api.wait_for_run(api.run_now(task["id"]), args.timeout)
        print()
        show_run(run)
        steps: dict[str, Any] = {s["id"]: s for s in run.get("step_results") or []}
        invoices = body["payload"]["params"]["invoices"]
        if "check" in steps:
            print("\nchecked, one item per invoice (in the list's order):")
            for invoice, item, output in zip(
                invoices, steps["check"]["items"], steps["check"]["output"], strict=False
            ):
                if item["status"] == "succeeded":
                    shown = f"{output['days_overdue']} days overdue"
                else:
                    shown = f"{item['error']['code']}: {item['error']['message']}"
                print(f"  [{item['index']}] {invoice['number']} {item['status']}: {shown}")
        if "remind" in steps and steps["remind"]["status"] == "succeeded":
            print("\npublished on reminders.invoice:")
            for item in steps["remind"]["items"]:
                payload = item["input"]["payload"]
                print(f"  [{item['index']}] to {payload['to']}: {payload['text']}")
        if "summary" in steps:
            print(f"\nsummary: {steps['summary']['output']}")
        ok = run["status"] == "succeeded"
        if args.keep and ok:
            wait_for_ctrl_c("The task stays scheduled (Mondays 09:00); Ctrl-C ends this script.")
        return EXIT_OK if ok else EXIT_RUN_FAILED
    finally:
        if not args.keep:
            api.delete_task(task["id"])
            print(f"deleted task {task['id']} (--keep leaves it scheduled)")


if __name__ == "__main__":
    sys.exit(main())
