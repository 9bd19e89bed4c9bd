"""A condition task, end to end, against a running Ordinaut (`make dev`).

    make dev ARGS=--allow-loopback-egress                  # terminal 1
    python examples/condition/run.py                        # terminal 2

Starts the stub price feed and inbox (examples/stubs.py) with ACME at 120, creates the task
from task.yaml (check the price every minute; alert when it drops below 100), waits until a
check has seen the high price, drops the price to 95 and waits for the alert to arrive in the
inbox, then deletes the task. A check that fails (the worker refused to call the stubs, for one)
ends the wait at once, with the failed run and what to change. The check runs once a minute, so this takes a minute or two;
``--timeout`` bounds the wait (default 150 s). ``--start-price 95`` starts below the threshold:
a task never checked counts as false, so the first check alerts (one poll instead of two).
``--keep`` leaves the task and the stubs up.

A server without condition tasks answers the create with 422; the script then says so and
exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# examples/ is not a package: its shared modules are imported from the folder itself.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connection import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_SETUP,
    EXIT_UNAVAILABLE,
    TERMINAL,
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
HIGH, LOW = 120.0, 95.0
FAILED = frozenset({"failed", "dead_letter"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_connection_args(parser)
    parser.set_defaults(timeout=150.0)
    parser.add_argument(
        "--stub-port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port of the stub services on 127.0.0.1 (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--poll", default=None, help="the check's schedule (default: task.yaml's, every minute)"
    )
    parser.add_argument(
        "--start-price", type=float, default=HIGH, help=f"ACME's first price (default: {HIGH})"
    )
    args = parser.parse_args(argv)
    try:
        stubs = StubServices(args.stub_port, price=args.start_price).start()
    except OSError as exc:
        print(f"cannot serve the stubs on 127.0.0.1:{args.stub_port}: {exc}", file=sys.stderr)
        return EXIT_SETUP
    try:
        with connect(args) as api:
            return price_alert(api, stubs, args)
    except ApiError as exc:
        print(exc.explain(), file=sys.stderr)
        return EXIT_RUN_FAILED
    finally:
        stubs.stop()


def create_alert_task(api: Api, body: dict[str, Any]) -> dict[str, Any] | None:
    """The created task, or None (said on stderr) when this Ordinaut refuses condition tasks."""
    try:
        return api.create_task(body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        print(exc.explain(), file=sys.stderr)
        print(
            "\nThis Ordinaut does not accept this condition task (schedule_kind 'condition' "
            "with payload.check / condition / pipeline); nothing was created.",
            file=sys.stderr,
        )
        return None


def move_price_and_wait(
    api: Api, stubs: StubServices, task_id: str, start_price: float, below: float, deadline: float
) -> dict[str, Any] | None:
    """Wait for a check above the threshold (if the price starts there), drop the price, wait
    for the alert; returns the run of a check that failed, if one did."""
    if start_price >= below:
        print(f"ACME is at {start_price}; waiting for the first check ...")
        failed = wait_for(lambda: stubs.checks() > 0, api, task_id, deadline)
        if failed is not None:
            return failed
        stubs.set_price(LOW)
        print(f"checked: no alert; ACME drops to {LOW}, below {below} ...")
    else:
        print(f"ACME is at {start_price}, below {below}; waiting for the first check ...")
    return wait_for(lambda: bool(stubs.delivered()), api, task_id, deadline)


def show_checks(api: Api, task_id: str, alerted: bool, deadline: float) -> None:
    """Each check is a run: "skipped" when the alert did not fire, else the alert's outcome.
    The alert reaches the inbox a moment before its run is recorded: wait for the record."""
    while True:
        polls = api.call("GET", "/runs", params={"task_id": task_id, "limit": 10})["items"]
        fired = [p for p in polls if p["status"] in TERMINAL and p["status"] != "skipped"]
        if fired or not alerted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for poll in reversed([p for p in polls if p["status"] in TERMINAL]):
        run = api.call("GET", f"/runs/{poll['id']}")
        show_run(run)
        for step in run.get("step_results") or []:
            if step.get("uses") == "condition":
                print(f"    condition: {json.dumps(step.get('output'))}")


def price_alert(api: Api, stubs: StubServices, args: argparse.Namespace) -> int:
    """Create the task, move the price across the threshold, wait for the one alert."""
    body = load_task(TASK_FILE, services=stubs.base)
    if args.poll:
        body["schedule_expr"] = args.poll
    task = create_alert_task(api, body)
    if task is None:
        return EXIT_UNAVAILABLE
    print(f"created task {task['id']}: {task['title']!r}, checking {task['schedule_expr']!r}")
    deadline = time.monotonic() + args.timeout
    below = body["payload"]["params"]["below"]
    try:
        failed = move_price_and_wait(api, stubs, task["id"], args.start_price, below, deadline)
        if failed is not None:
            # A check that failed (the worker refused the stubs' address, say) never reaches
            # the stub, so waiting longer would only end in "no alert": say why now.
            print(f"a check of the price failed: run {failed['status']}", file=sys.stderr)
            show_run(failed)
            hint_egress(failed, stubs.port)
            return EXIT_RUN_FAILED
        alerts = stubs.delivered()
        show_checks(api, task["id"], bool(alerts), deadline)
        if not alerts:
            print(f"no alert within {args.timeout:.0f} s", file=sys.stderr)
            return EXIT_RUN_FAILED
        print(f"\nThe inbox received: {alerts[0]['subject']}: {alerts[0]['text']}")
        if args.keep:
            wait_for_ctrl_c(f"The stubs keep serving on {stubs.base}; Ctrl-C stops them.")
        return EXIT_OK
    finally:
        if not args.keep:
            api.delete_task(task["id"])
            print(f"deleted task {task['id']} (--keep leaves it in place)")


def wait_for(
    done: Callable[[], bool], api: Api, task_id: str, deadline: float
) -> dict[str, Any] | None:
    """Wait until ``done()`` or the deadline; a check run of the task that failed ends the
    wait early and is returned (with its step results)."""
    next_look = 0.0
    while not done() and time.monotonic() < deadline:
        if time.monotonic() >= next_look:
            next_look = time.monotonic() + 1.0
            page = api.call("GET", "/runs", params={"task_id": task_id, "limit": 10})
            failed = [r for r in page["items"] if r["status"] in FAILED]
            if failed:
                run: dict[str, Any] = api.call("GET", f"/runs/{failed[0]['id']}")
                return run
        time.sleep(0.2)
    return None


if __name__ == "__main__":
    sys.exit(main())
