"""Retry backoff: how long a failed attempt waits before the next one, and which failures are
not retried at all (docs/guarantees.md, "Retries and dead letters").

Pure: the caller passes `now` (read once from the one clock) and, in tests, a seeded
``random.Random``. A worker never sleeps on these delays; it re-queues the slot with
``run_at = next_attempt_at(...)`` and lets go of the lease.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from ordinaut.vocabulary import BACKOFF_STRATEGIES

# Failures that the same run would meet again on every retry: the pipeline or its arguments
# do not validate, the URL is refused by the egress policy or is not http(s), a secret the
# pipeline names is not stored, the run's event is already as deep as events may go, its
# owner no longer holds a scope a step needs. Such a run is dead-lettered at once; waiting
# cannot fix it.
NOT_RETRYABLE = frozenset(
    {
        "egress_refused",
        "invalid_url",
        "invalid_arguments",
        "invalid_pipeline",
        "validation_error",
        "secret_missing",
        "event_depth_exceeded",
        "missing_scope",
    }
)


def is_retryable(error: object) -> bool:
    """False when a run's ``error`` (``{step, code, message}``) is one no retry can fix."""
    return not (isinstance(error, dict) and error.get("code") in NOT_RETRYABLE)


_RNG = random.Random()  # jitter spreads retries out; it needs no cryptographic strength
_MAX_DOUBLINGS = 64  # 2**64 * any sane base is past every cap; avoids float overflow


def backoff_seconds(
    strategy: str,
    attempt: int,
    *,
    base_s: float = 2.0,
    max_s: float = 3600.0,
    rng: random.Random | None = None,
) -> float:
    """Delay before the retry that follows failed attempt `attempt` (1-based); 0 < result <= max_s."""
    if strategy not in BACKOFF_STRATEGIES:
        raise ValueError(f"unknown backoff strategy {strategy!r}; use one of {BACKOFF_STRATEGIES}")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")
    if not (base_s > 0 and math.isfinite(base_s) and max_s > 0 and math.isfinite(max_s)):
        raise ValueError("base_s and max_s must be finite and > 0")
    if strategy == "fixed":
        return min(base_s, max_s)
    if strategy == "linear":
        return min(base_s * attempt, max_s)
    ceiling = min(base_s * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS), max_s)
    # "Full jitter" (uniform over [0, ceiling]) spreads a thundering herd best, but a draw near
    # 0 would retry at once; the floor of half a base step keeps every retry a real backoff.
    floor = min(base_s / 2, ceiling)
    return min((rng or _RNG).uniform(floor, ceiling), ceiling)  # uniform() may round past b


def next_attempt_at(
    strategy: str,
    attempt: int,
    now: datetime,
    *,
    base_s: float = 2.0,
    max_s: float = 3600.0,
    rng: random.Random | None = None,
) -> datetime:
    """When the retry after failed attempt `attempt` is due: aware UTC, strictly after `now`."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    delay = backoff_seconds(strategy, attempt, base_s=base_s, max_s=max_s, rng=rng)
    # timedelta keeps microseconds; a sub-microsecond delay would round to `now` itself.
    return now.astimezone(UTC) + max(timedelta(seconds=delay), timedelta(microseconds=1))
