"""``ordinaut admin``: the operator's view over REST (an admin credential): due work by state,
each scheduler's last tick, live workers and the runs they hold, and every agent's dead letters,
with ``--retry RUN_ID`` to requeue them."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ordinaut.cli.common import EXIT_OK, SubParsers, int_in, leaf
from ordinaut.cli.output import print_json, short, table, utc
from ordinaut.cli.rest import api_errors, connect, connection_flags

if TYPE_CHECKING:
    from ordinaut.client import Ordinaut, Run

DEAD_LETTER = "dead_letter"


def _when(value: Any) -> str:
    return utc(datetime.fromisoformat(value)) if isinstance(value, str) else "-"


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}s"


def _dead_letters(client: Ordinaut, limit: int) -> tuple[list[Run], int]:
    page = client.list_runs(status=DEAD_LETTER, owner="*", limit=limit)
    return page.items, page.total


def render(overview: dict[str, Any], dead: list[Run], dead_total: int) -> str:
    """The overview as the operator reads it, section by section."""
    queue = overview["queue"]
    lines = [
        f"queue        due {queue['due']}   scheduled {queue['scheduled']}   "
        f"running {queue['running']}   oldest due waiting {_seconds(queue['oldest_due_age_s'])}",
        "",
    ]
    schedulers = overview["schedulers"]
    if schedulers:
        lines.append("schedulers")
        rows = [
            [
                s["name"],
                _when(s["last_tick_at"]),
                _seconds(s["age_s"]),
                f"{s['last_duration_ms']:.1f}ms",
                str(s["last_materialized"]),
            ]
            for s in schedulers
        ]
        lines.append(table(["NAME", "LAST TICK", "AGO", "TOOK", "MATERIALIZED"], rows))
    else:
        lines.append("schedulers   none has ticked yet")
    lines.append("")
    workers = overview["workers"]
    lines.append(
        f"workers      {overview['live_workers']} live, {overview['in_flight']} runs in flight"
        f" (live: a heartbeat within {overview['worker_window_s']:g}s)"
    )
    if workers:
        rows = [
            [
                w["worker_id"],
                f"{w['hostname']}:{w['pid']}",
                "yes" if w["live"] else "no",
                _when(w["last_seen"]),
                str(w["in_flight"]),
                " ".join(w["runs"]) or "-",
            ]
            for w in workers
        ]
        lines.append(table(["WORKER", "HOST:PID", "LIVE", "LAST SEEN", "IN FLIGHT", "RUNS"], rows))
    lines.append("")
    lines.append(f"dead letters {dead_total} across all agents")
    if dead:
        rows = [
            [
                r.id,
                r.owner_id or "-",
                r.task_id,
                str(r.attempt),
                utc(r.finished_at),
                short((r.error or {}).get("message") if isinstance(r.error, dict) else r.error, 50),
            ]
            for r in dead
        ]
        lines.append(table(["RUN", "OWNER", "TASK", "ATTEMPT", "FAILED AT", "ERROR"], rows))
        if dead_total > len(dead):
            lines.append(f"({len(dead)} of {dead_total}; --dead-letters N to see more)")
        lines.append("requeue one with: ordinaut admin --retry RUN_ID")
    return "\n".join(lines)


def cmd_admin(args: argparse.Namespace) -> int:
    with connect(args) as client, api_errors():
        if args.retry:
            retried = [client.retry_run(run_id) for run_id in args.retry]
            if args.json:
                print_json({"retried": [r.to_json() for r in retried]})
            else:
                for r in retried:
                    print(f"requeued run {r.id} of agent {r.owner_id} (attempt {r.attempt})")
            return EXIT_OK
        overview = client.admin_overview()
        dead, dead_total = _dead_letters(client, args.dead_letters)
    if args.json:
        print_json(
            {
                **overview,
                "dead_letters": {"total": dead_total, "items": [r.to_json() for r in dead]},
            }
        )
        return EXIT_OK
    print(render(overview, dead, dead_total))
    return EXIT_OK


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = leaf(
        sub,
        "admin",
        "the operator's view: queue, schedulers, workers, dead letters (admin)",
        "  ordinaut admin\n  ordinaut admin --dead-letters 100 --json\n"
        "  ordinaut admin --retry RUN_ID [--retry RUN_ID ...]",
        cmd_admin,
    )
    p.description = (
        "Show what an operator checks first, over the REST API with an admin credential:\n"
        "due work by state (due, scheduled, running) and how long the oldest due row waits,\n"
        "each scheduler's last tick, the workers (live ones first) with the runs each holds,\n"
        "and the dead letters of every agent. --retry requeues a dead-lettered (or failed)\n"
        "run of any agent with a fresh retry budget."
    )
    p.add_argument(
        "--retry",
        action="append",
        metavar="RUN_ID",
        help="requeue this dead-lettered or failed run (repeat for several)",
    )
    p.add_argument(
        "--dead-letters",
        type=int_in(1, 500, "count"),
        default=20,
        metavar="N",
        help="dead letters to list, newest first (default 20, at most 500)",
    )
    connection_flags(p)
