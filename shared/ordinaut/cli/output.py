"""How the REST commands print: tables for people, JSON for scripts, progress on stderr.

Imports no other ``ordinaut.cli`` module. The command groups import this one while the parser
is built, so ``ordinaut.client`` (for its schedule words; with httpx and pydantic it takes about
a quarter of a second) is imported only by the functions that print.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from ordinaut.client import Run, Task


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines
    )


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def utc(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def in_words(kind: str, expr: str, zone: str) -> str:
    """A schedule in words (``ordinaut.client.words``)."""
    from ordinaut.client import words

    return words.describe_schedule(kind, expr, zone)


def local_time(at: Any, zone: str) -> str:
    """An instant in the task's time zone (``ordinaut.client.words``)."""
    from ordinaut.client import words

    return words.local_time(at, zone)


def print_fire_times(times: list[Any], zone: str, label: str) -> None:
    """Fire times under ``label`` (first line only), in ``zone`` with UTC beside; "none"."""
    if not times:
        print(f"  {label:<10}  none")
    for i, at in enumerate(times):
        print(f"  {label if i == 0 else '':<10}  {local_time(at, zone)}  ({utc(at)})")


def print_next(times: list[Any], zone: str) -> None:
    """The next fire times after a create or an update, one ``next`` line each."""
    for at in times:
        print(f"  next  {local_time(at, zone)}  ({utc(at)})")


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def next_run(task: Task) -> str:
    """The task's next fire time in its zone; none when it is not active (a paused task keeps
    its schedule, but nothing runs until it is resumed)."""
    if task.status != "active":
        return f"- ({task.status})"
    return local_time(task.next_run_at, task.timezone) if task.next_run_at else "-"


def last_run(task: Task) -> str:
    if not task.last_run_status:
        return "-"
    at = f" {local_time(task.last_run_at, task.timezone)}" if task.last_run_at else ""
    return f"{task.last_run_status}{at}"


def task_row(task: Task) -> list[str]:
    words = in_words(task.schedule_kind, task.schedule_expr, task.timezone)
    failures = "-" if task.failures_24h is None else str(task.failures_24h)
    return [
        task.id,
        clip(task.title, 30),
        task.status,
        clip(words, 50),
        next_run(task),
        last_run(task),
        failures,
    ]


TASK_HEADERS = ["ID", "TITLE", "STATUS", "SCHEDULE", "NEXT RUN", "LAST RUN", "FAILED 24H"]


def run_row(run: Run, titles: dict[str, str]) -> list[str]:
    """A run as a table row; ``titles`` maps task ids to titles (tables show titles)."""
    return [
        run.id,
        clip(titles.get(run.task_id, run.task_id), 30),
        run.status,
        str(run.attempt),
        run.trigger,
        utc(run.scheduled_for),
        duration(run.duration_ms),
    ]


RUN_HEADERS = ["ID", "TASK", "STATUS", "ATTEMPT", "TRIGGER", "SCHEDULED FOR", "DURATION"]


def short(value: Any, width: int = 60) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return clip(text.replace("\n", " "), width)


def render_run(run: Run, title: str | None = None) -> str:
    task = f"{title}  ({run.task_id})" if title else run.task_id
    lines = [
        f"run {run.id}  {run.status}",
        f"  task           {task}",
        f"  trigger        {run.trigger}" + (f" (event {run.event_id})" if run.event_id else ""),
        f"  attempt        {run.attempt}",
        f"  scheduled for  {utc(run.scheduled_for)}",
        f"  started        {utc(run.started_at)}",
        f"  finished       {utc(run.finished_at)}  ({duration(run.duration_ms)})",
    ]
    if run.output is not None:
        lines.append(f"  output         {short(run.output, 200)}")
    if run.error:
        lines.append(f"  error          {short(run.error, 200)}")
    steps = run.step_results or []
    if steps:
        rows = []
        for step in steps:
            result = step.get("error") if step.get("error") else step.get("output")
            rows.append(
                [
                    str(step.get("id", "?")),
                    str(step.get("uses", "?")),
                    str(step.get("status", "?")),
                    duration(step.get("duration_ms")),
                    short(result),
                ]
            )
        lines += [
            "",
            "steps",
            table(["STEP", "TOOL", "STATUS", "DURATION", "OUTPUT / ERROR"], rows),
        ]
    return "\n".join(lines)


class Progress:
    """Status changes of a followed run on stderr; on a terminal, a live elapsed-time line."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.started = time.monotonic()
        self.last: tuple[str, int] | None = None
        self.live = sys.stderr.isatty()

    def __call__(self, run: Run) -> None:
        state = (run.status, run.attempt)
        elapsed = time.monotonic() - self.started
        if state != self.last:
            self.last = state
            end = "\n" if not self.live or run.finished else ""
            text = f"{elapsed:6.1f}s  run {self.run_id}: {run.status} (attempt {run.attempt})"
            print(("\r" if self.live else "") + text, end=end, file=sys.stderr, flush=True)
        elif self.live:
            text = f"{elapsed:6.1f}s  run {self.run_id}: {run.status} (attempt {run.attempt})"
            print("\r" + text, end="", file=sys.stderr, flush=True)
