"""Pure slot planning: which fire times of one task a tick materializes, and the new cursor.

Misfire handling (docs/guarantees.md, "Misfires and overlap") lives here so it can be tested
without a database.
"""

from __future__ import annotations

import functools
import hashlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from ordinaut.schedules import Schedule

EPSILON = timedelta(microseconds=1)


@functools.lru_cache(maxsize=4096)
def stored_schedule(kind: str, expr: str, timezone: str, dtstart: datetime | None) -> Schedule:
    """A schedule from persisted (already validated) fields, compiled once per process.

    No "in the past" or minimum-interval checks: those guard writes, and a stored one-shot
    that has fired must still be readable.
    """
    return Schedule(kind, expr, timezone, dtstart)


@dataclass(frozen=True)
class Policy:
    misfire: str  # skip | run_once | run_all (ordinaut.vocabulary.MISFIRE_POLICIES)
    grace_s: float
    catchup_s: float
    run_all_cap: int


@dataclass
class Plan:
    # (scheduled_for, run_at): scheduled_for is the slot's identity, run_at when it may start.
    slots: list[tuple[datetime, datetime]] = field(default_factory=list)
    next_run_at: datetime | None = None
    skipped: int = 0
    coalesced: int = 0
    caught_up: int = 0


def plan_slots(
    schedule: Schedule,
    cursor: datetime,
    *,
    now: datetime,
    horizon: datetime,
    policy: Policy,
    snoozed_until: datetime | None = None,
) -> Plan:
    """Slots with instants in [cursor, horizon], misfire policy applied to those missed.

    Invariants: slots are strictly increasing; ``next_run_at`` is None or > horizon; a slot
    older than ``now - grace`` is missed and handled by the policy, never silently run late.
    """
    plan = Plan()
    late_before = now - timedelta(seconds=policy.grace_s)
    window_start = now - timedelta(seconds=policy.catchup_s)
    t: datetime | None = cursor
    if t is not None and t < window_start:
        # A long outage: slots older than the catch-up window are dropped without walking them.
        plan.skipped += 1
        t = schedule.next_after(window_start - EPSILON)
    missed: deque[datetime] = deque(maxlen=max(1, policy.run_all_cap))
    n_missed = 0
    while t is not None and t < late_before:
        missed.append(t)
        n_missed += 1
        t = schedule.next_after(t)
    if n_missed:
        if policy.misfire == "skip":
            plan.skipped += n_missed
        elif policy.misfire == "run_once":
            plan.coalesced += n_missed - 1
            plan.slots.append((missed[-1], now))
        else:  # run_all, the most recent `cap` of them
            plan.skipped += n_missed - len(missed)
            plan.caught_up += len(missed)
            plan.slots.extend((m, now) for m in missed)
    while t is not None and t <= horizon:
        plan.slots.append((t, t))
        t = schedule.next_after(t)
    plan.next_run_at = t
    if snoozed_until is not None:
        plan.slots = [(s, max(r, snoozed_until)) for s, r in plan.slots]
    return plan


def slot_key(scheduled_for: datetime) -> str:
    """The unique identity of a time slot within its task."""
    return "sched:" + scheduled_for.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def idempotency_key(task_id: UUID, slot: str) -> str:
    """Stable across every attempt of one slot; each step's call carries it followed by
    ``:<step id>`` (``:<step id>:<index>`` per foreach item), see ``pipeline/executor.py``."""
    digest = hashlib.sha256(f"{task_id}|{slot}".encode()).hexdigest()[:32]
    return f"ord-{digest}"
