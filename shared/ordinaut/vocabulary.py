"""The words tasks and runs are described with, defined once: schedule kinds, task and run
statuses, retry backoffs, misfire and overlap policies.

The API's models, the schedule parser, the retry policy, the CLI's choices, the MCP tools and
the client all take them from here; the database's CHECK constraints (migrations/) hold the
same words, and tests/integration/test_vocabulary_schema.py checks that they agree. Standard library
only, so the client imports it without the server's dependencies.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

ScheduleKind = Literal["cron", "rrule", "once", "event", "condition"]
TaskStatus = Literal["active", "paused", "canceled", "completed"]
RunStatus = Literal[
    "queued", "running", "succeeded", "failed", "dead_letter", "canceled", "skipped"
]
Backoff = Literal["exponential_jitter", "linear", "fixed"]
Misfire = Literal["skip", "run_once", "run_all"]
Overlap = Literal["skip", "allow", "buffer_one"]
# a task's payload.notify: the run outcomes a webhook is told about, and a delivery's state
NotifyOutcome = Literal["succeeded", "failed", "dead_letter"]
NotificationStatus = Literal["pending", "delivered", "failed"]

SCHEDULE_KINDS: Final[tuple[ScheduleKind, ...]] = get_args(ScheduleKind)
# the kinds whose fire times come from the clock (event and condition tasks fire on events)
TIME_KINDS: Final[tuple[ScheduleKind, ...]] = ("cron", "rrule", "once")
TASK_STATUSES: Final[tuple[TaskStatus, ...]] = get_args(TaskStatus)
RUN_STATUSES: Final[tuple[RunStatus, ...]] = get_args(RunStatus)
# the statuses of a run that has ended
FINAL_RUN_STATUSES: Final[frozenset[RunStatus]] = frozenset(
    {"succeeded", "failed", "dead_letter", "canceled", "skipped"}
)
BACKOFF_STRATEGIES: Final[tuple[Backoff, ...]] = get_args(Backoff)
MISFIRE_POLICIES: Final[tuple[Misfire, ...]] = get_args(Misfire)
OVERLAP_POLICIES: Final[tuple[Overlap, ...]] = get_args(Overlap)
NOTIFY_OUTCOMES: Final[tuple[NotifyOutcome, ...]] = get_args(NotifyOutcome)
NOTIFICATION_STATUSES: Final[tuple[NotificationStatus, ...]] = get_args(NotificationStatus)
