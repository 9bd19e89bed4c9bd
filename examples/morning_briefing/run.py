"""The morning briefing, end to end, against a running Ordinaut (`make dev`).

    make dev ARGS=--allow-loopback-egress                  # terminal 1
    python examples/morning_briefing/run.py                 # terminal 2

Starts the stub calendar, weather and inbox services (examples/stubs.py) on 127.0.0.1:8765,
creates the weekday-08:00 task from task.yaml pointed at them, shows its next fire times,
runs it once now, prints each step's result and the briefing the inbox received, then
deletes the task. ``--keep`` leaves the task scheduled and the stubs up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# examples/ is not a package: its shared modules are imported from the folder itself.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connection import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_SETUP,
    Api,
    ApiError,
    add_connection_args,
    connect,
    hint_egress,
    load_task,
    show_run,
    wait_for_ctrl_c,
)
from stubs import DEFAULT_PORT, StubServices

TASK_FILE = Path(__file__).with_name("task.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_connection_args(parser)
    parser.add_argument(
        "--stub-port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port of the stub services on 127.0.0.1 (default: {DEFAULT_PORT})",
    )
    args = parser.parse_args(argv)
    try:
        stubs = StubServices(args.stub_port).start()
    except OSError as exc:
        print(f"cannot serve the stubs on 127.0.0.1:{args.stub_port}: {exc}", file=sys.stderr)
        return EXIT_SETUP
    try:
        with connect(args) as api:
            return briefing(api, stubs, args)
    except ApiError as exc:
        print(exc.explain(), file=sys.stderr)
        return EXIT_RUN_FAILED
    finally:
        stubs.stop()


def briefing(api: Api, stubs: StubServices, args: argparse.Namespace) -> int:
    """Create the task, run it once now, show what happened; 0 when the briefing arrived."""
    body = load_task(TASK_FILE, services=stubs.base)
    task = api.create_task(body)
    print(f"created task {task['id']}: {task['title']!r}")
    print(f"  {task['schedule_kind']} {task['schedule_expr']!r} in {task['timezone']}; next:")
    for instant in api.fire_times(task["id"]):
        print(f"    {instant}")
    try:
        run = api.wait_for_run(api.run_now(task["id"]), args.timeout)
        print()
        show_run(run)
        if run["status"] != "succeeded":
            hint_egress(run, stubs.port)
            return EXIT_RUN_FAILED
        print("\nThe inbox received:")
        for message in stubs.delivered():
            print(f"  to {message['to']}: {message['subject']}")
            print(f"  {message['text']}")
        print(f"\nSee it on the status page: {api.url}/ui")
        if args.keep:
            wait_for_ctrl_c(
                f"The task stays scheduled and the stubs keep serving on {stubs.base}; "
                "Ctrl-C stops the stubs (the task remains)."
            )
        return EXIT_OK
    finally:
        if not args.keep:
            api.delete_task(task["id"])
            print(f"deleted task {task['id']} (--keep leaves it scheduled)")


if __name__ == "__main__":
    sys.exit(main())
