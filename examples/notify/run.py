"""Run notifications, end to end, against a running Ordinaut (`make dev ARGS=--allow-loopback-egress`).

    python examples/notify/run.py

Starts the signature-checking receiver (receiver.py) on 127.0.0.1, stores a fresh signing
secret (``PUT /secrets/NOTIFY_SECRET``), creates the task from task.yaml twice (once as is,
once with ``params.fail`` so its run is dead-lettered), runs both now and waits until the
receiver has verified one notification per run. Shows each run's delivery record
(``GET /runs/{id}`` -> ``notifications``), then sends the receiver a forged notification,
which it refuses. Deletes the tasks and the secret afterwards (``--keep`` leaves them).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from connection import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_SETUP,
    Api,
    ApiError,
    add_connection_args,
    connect,
    load_task,
    show_run,
    wait_for_ctrl_c,
)
from receiver import Receiver

TASK_FILE = Path(__file__).with_name("task.yaml")
SECRET_NAME = "NOTIFY_SECRET"
DEFAULT_PORT = 8766


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_connection_args(parser)
    parser.add_argument(
        "--receiver-port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port of the receiver on 127.0.0.1 (default: {DEFAULT_PORT})",
    )
    args = parser.parse_args(argv)
    secret = secrets.token_urlsafe(32)
    try:
        server = Receiver(("127.0.0.1", args.receiver_port), secret)
    except OSError as exc:
        print(f"cannot receive on 127.0.0.1:{args.receiver_port}: {exc}", file=sys.stderr)
        return EXIT_SETUP
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with connect(args) as api:
            return notify(api, server, secret, args)
    except ApiError as exc:
        print(exc.explain(), file=sys.stderr)
        if any(str(p.get("field")).endswith(".url") for p in exc.details or []):
            print(
                "\nOrdinaut sends notifications over https; http only to a host the operator "
                "opened. Restart it with\n\n    make dev ARGS=--allow-loopback-egress\n\n"
                f"(or ORDINAUT_EGRESS_ALLOWLIST=127.0.0.1:{args.receiver_port} make dev) and "
                "run this again.",
                file=sys.stderr,
            )
        return EXIT_RUN_FAILED
    finally:
        server.shutdown()
        server.server_close()


def notify(api: Api, server: Receiver, secret: str, args: argparse.Namespace) -> int:
    """Two runs, two verified notifications, one refused forgery; 0 when all of that held."""
    url = f"http://127.0.0.1:{server.server_address[1]}/ordinaut"
    api.call("PUT", f"/secrets/{SECRET_NAME}", json={"value": secret})
    print(f"stored secret {SECRET_NAME} (the receiver checks signatures with the same value)")
    created: list[dict[str, Any]] = []
    try:
        for fail in (False, True):
            body = load_task(TASK_FILE, fail=fail)
            body["payload"]["notify"][0]["url"] = url
            if fail:
                body["title"] += " (failing)"
            created.append(api.create_task(body))
        print(f"created {len(created)} tasks notifying {url}\n")
        runs = [api.wait_for_run(api.run_now(t["id"]), args.timeout) for t in created]
        for run in runs:
            show_run(run)
        deadline = time.monotonic() + args.timeout
        while len(server.deliveries) < len(runs) and time.monotonic() < deadline:
            time.sleep(0.2)
        print()
        ok = len(server.deliveries) == len(runs)
        for run in runs:
            shown = api.call("GET", f"/runs/{run['id']}")["notifications"] or []
            for n in shown:
                print(
                    f"run {run['id']}: {n['outcome']} -> {n['url']}: {n['status']} after "
                    f"{n['attempts']} attempt(s), last answer {n['last_status_code']}"
                )
            ok = ok and [n["status"] for n in shown] == ["delivered"]
        kinds = sorted(d["type"] for d in server.deliveries.values())
        print(f"\nthe receiver verified: {', '.join(kinds) or 'nothing'}")
        ok = ok and kinds == ["run.dead_letter", "run.succeeded"]

        forged = json.dumps({"type": "run.succeeded", "run": {"id": "forged"}})
        answer = httpx.post(
            url,
            content=forged,
            headers={
                "Content-Type": "application/json",
                "Ordinaut-Signature": f"t={int(time.time())},v1={'0' * 64}",
            },
        )
        print(
            f"a forged notification (wrong signature): the receiver answered {answer.status_code}"
        )
        ok = ok and answer.status_code == 401
        if args.keep and ok:
            wait_for_ctrl_c(
                "The tasks stay (they fire at 02:00 Chisinau); Ctrl-C ends this script."
            )
        return EXIT_OK if ok else EXIT_RUN_FAILED
    finally:
        if not args.keep:
            for task in created:
                api.delete_task(task["id"])
            api.call("DELETE", f"/secrets/{SECRET_NAME}")
            print("deleted the tasks and the secret (--keep leaves them)")


if __name__ == "__main__":
    sys.exit(main())
