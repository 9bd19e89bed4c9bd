"""Outcomes: what one leased attempt comes to, decided without I/O.

``not_run`` says whether a leased row runs at all (its owner deactivated, overlap "skip");
``classify`` turns an attempt's ``PipelineResult`` into the ``work.Outcome`` the recorder
writes: success, a retry at its backoff instant, or a dead letter (with why no retry was
tried, when one could not help). Both are pure: the caller passes the clock's reading and
the retry policy (with its random source), so the table of cases is tested without a
database (tests/unit/test_worker_outcomes.py). ``count`` adds an outcome to the metrics.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime
from typing import Any

from ordinaut import metrics
from ordinaut.config import Settings
from ordinaut.pipeline import PipelineResult
from ordinaut.retries import is_retryable, next_attempt_at
from ordinaut.store.rows import LeasedRun
from ordinaut.store.work import Outcome

# Label children resolved once: labels() costs a lock and a dict lookup on every call.
OUTCOMES = {
    name: metrics.RUNS.labels(name)
    for name in ("succeeded", "failed", "retried", "dead_letter", "skipped", "canceled")
}


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How a failed attempt's retry is timed: the deployment's backoff bounds (the task
    picks the strategy) and the random source of the jitter (seeded in tests)."""

    base_s: float = 2.0
    max_s: float = 3600.0
    rng: random.Random = dataclasses.field(default_factory=random.Random)

    @classmethod
    def from_settings(cls, settings: Settings, rng: random.Random) -> RetryPolicy:
        return cls(settings.backoff_base_s, settings.backoff_max_s, rng)


def not_run(row: LeasedRun, now: datetime) -> Outcome | None:
    """The outcome of a leased row that must not run, else None (it runs).

    A deactivated owner's run is canceled. Overlap "skip" drops a *scheduled* slot that finds
    its predecessor still running; an event or a run_now is a request somebody made, so it
    runs instead of vanishing.
    """
    if not row.owner_active:
        return Outcome(
            row.run_id,
            row.lease_token,
            row.attempt,
            "canceled",
            now,
            error={
                "code": "owner_inactive",
                "message": "the agent owning this task was deactivated; the run was not executed",
            },
        )
    if row.overlap_policy == "skip" and row.sibling_running and row.trigger == "schedule":
        return skipped(row, now, "the previous run of this task was still running")
    return None


def skipped(row: LeasedRun, now: datetime, why: str) -> Outcome:
    """A leased slot that overlap made unnecessary: skipped, never run."""
    return Outcome(
        row.run_id,
        row.lease_token,
        row.attempt,
        "skipped",
        now,
        error={"code": "overlap_skipped", "message": why},
    )


def classify(
    result: PipelineResult,
    row: LeasedRun,
    now: datetime,
    policy: RetryPolicy,
    *,
    duration_ms: int = 0,
) -> Outcome:
    """The outcome of an attempt that ran and ended with ``result`` at ``now``.

    One rule for a run that ends without success: it is dead-lettered (listed with
    GET /runs?status=dead_letter, the status page, the CLI and MCP), whether its retries ran
    out, it had none (max_retries 0), or no retry could fix its error; in the last case,
    with attempts left, the error says so (``retried: false``, ``why_not_retried``).
    """
    common: dict[str, Any] = {
        "run_id": row.run_id,
        "token": row.lease_token,
        "attempt": row.attempt,
        "finished_at": now,
        "duration_ms": duration_ms,
        "steps": result.steps,
    }
    if result.status in ("succeeded", "skipped"):  # skipped: a condition poll that did not fire
        return Outcome(status=result.status, output=result.output, **common)
    error = result.error
    retryable = is_retryable(error)
    attempts_left = row.attempt < row.max_attempts
    if attempts_left and retryable:
        retry_at = next_attempt_at(
            row.backoff_strategy,
            row.attempt,
            now,
            base_s=policy.base_s,
            max_s=policy.max_s,
            rng=policy.rng,
        )
        return Outcome(status="retry", error=error, retry_at=retry_at, **common)
    if not retryable and attempts_left and error is not None:
        error = {
            **error,
            "retried": False,
            "why_not_retried": f"{error.get('code')} cannot succeed on a retry; fix the task",
        }
    return Outcome(status="dead_letter", error=error, **common)


def unstorable(outcome: Outcome, exc: Exception) -> Outcome:
    """What is recorded for an outcome that could not be stored: a failure naming why.

    A failed attempt that was going to be retried still is; any other outcome ends the run as
    a dead letter without a retry: the attempt ran to its end, and running it again would
    repeat its side effects only to produce the same unstorable outcome.
    """
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    error: dict[str, Any] = {
        "step": None,
        "code": "storage_error",
        "message": f"the run's outcome could not be stored ({reason})",
    }
    if outcome.status != "retry":
        error.update(retried=False, why_not_retried="the attempt finished; it is not run again")
    return dataclasses.replace(
        outcome,
        status="retry" if outcome.status == "retry" else "dead_letter",
        output=None,
        steps=[],
        error=error,
    )


def count(outcome: Outcome) -> None:
    """Add an outcome to the run metrics (``ordinaut_runs_total`` and its companions)."""
    if outcome.status == "retry":
        OUTCOMES["retried"].inc()
        metrics.RETRIES.inc()
    elif outcome.status == "dead_letter":
        OUTCOMES["dead_letter"].inc()
        metrics.DEAD_LETTERS.inc()
    else:
        OUTCOMES[outcome.status].inc()
