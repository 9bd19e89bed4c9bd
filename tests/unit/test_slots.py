"""slots.py on its own: which fire times a tick materializes, the misfire policies, the cursor
it leaves, snoozes, and the keys that name a slot (docs/guarantees.md, "Misfires and overlap").

Pure: no database, no clock but the instants passed in.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordinaut.errors import InvalidSchedule
from ordinaut.schedules import Schedule, parse_schedule
from ordinaut.slots import (
    EPSILON,
    Plan,
    Policy,
    idempotency_key,
    plan_slots,
    slot_key,
    stored_schedule,
)
from ordinaut.vocabulary import MISFIRE_POLICIES, Misfire

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EVERY_5 = parse_schedule("cron", "*/5 * * * *", now=NOW)
MINUTE = timedelta(minutes=1)


def policy(
    misfire: Misfire = "run_once", *, grace_s: float = 60, catchup_s: float = 86_400, cap: int = 100
) -> Policy:
    return Policy(misfire, grace_s, catchup_s, cap)


def plan(
    schedule: Schedule = EVERY_5,
    cursor: datetime = NOW,
    *,
    now: datetime = NOW,
    lookahead: timedelta = timedelta(seconds=90),
    rules: Policy | None = None,
    snoozed_until: datetime | None = None,
) -> Plan:
    return plan_slots(
        schedule,
        cursor,
        now=now,
        horizon=now + lookahead,
        policy=rules or policy(),
        snoozed_until=snoozed_until,
    )


def fires_between(schedule: Schedule, first: datetime, last: datetime) -> list[datetime]:
    """Every fire instant in [first, last]."""
    out = []
    t = schedule.next_after(first - EPSILON)
    while t is not None and t <= last:
        out.append(t)
        t = schedule.next_after(t)
    return out


# --- on time -----------------------------------------------------------------------------------


def test_slots_due_within_the_lookahead_run_at_their_own_instant() -> None:
    result = plan(cursor=NOW, lookahead=timedelta(minutes=12))
    assert result.slots == [
        (NOW, NOW),
        (NOW + 5 * MINUTE, NOW + 5 * MINUTE),
        (NOW + 10 * MINUTE, NOW + 10 * MINUTE),
    ]
    assert result.next_run_at == NOW + 15 * MINUTE
    assert (result.skipped, result.coalesced, result.caught_up) == (0, 0, 0)


def test_a_cursor_beyond_the_horizon_plans_nothing_and_keeps_the_cursor() -> None:
    later = NOW + 30 * MINUTE
    result = plan(cursor=later)
    assert result.slots == []
    assert result.next_run_at == later


def test_a_slot_exactly_at_the_end_of_the_grace_runs_at_its_instant() -> None:
    # late means older than now - grace; a slot right at that edge still runs as scheduled
    edge = NOW - 5 * MINUTE
    result = plan(cursor=edge, rules=policy("skip", grace_s=300))
    assert result.slots[0] == (edge, edge)
    assert result.skipped == 0


def test_an_exhausted_schedule_leaves_no_cursor() -> None:
    once = Schedule("once", "2026-03-02T12:01:00+00:00", "UTC")
    first = once.next_after(NOW - timedelta(days=1))
    assert first is not None
    result = plan(once, first)
    assert result.slots == [(first, first)]
    assert result.next_run_at is None


# --- misfires ---------------------------------------------------------------------------------

# An hour-long outage of a task due every 5 minutes: 12 fire times missed, 11:00 .. 11:55.
OUTAGE_CURSOR = NOW - timedelta(hours=1)
MISSED = [OUTAGE_CURSOR + i * 5 * MINUTE for i in range(12)]


def test_skip_drops_every_missed_slot_and_counts_them() -> None:
    result = plan(cursor=OUTAGE_CURSOR, rules=policy("skip"))
    assert result.slots == [(NOW, NOW)]
    assert result.skipped == 12


def test_run_once_runs_the_latest_missed_slot_now_and_coalesces_the_rest() -> None:
    result = plan(cursor=OUTAGE_CURSOR, rules=policy("run_once"))
    assert result.slots == [(MISSED[-1], NOW), (NOW, NOW)]
    assert (result.coalesced, result.skipped, result.caught_up) == (11, 0, 0)


def test_run_all_runs_every_missed_slot_now_in_order() -> None:
    result = plan(cursor=OUTAGE_CURSOR, rules=policy("run_all"))
    assert result.slots == [(m, NOW) for m in MISSED] + [(NOW, NOW)]
    assert (result.caught_up, result.skipped) == (12, 0)


def test_run_all_keeps_only_the_most_recent_cap_and_skips_the_older() -> None:
    result = plan(cursor=OUTAGE_CURSOR, rules=policy("run_all", cap=3))
    assert result.slots == [(m, NOW) for m in MISSED[-3:]] + [(NOW, NOW)]
    assert (result.caught_up, result.skipped) == (3, 9)


def test_a_cap_of_zero_still_runs_the_latest_missed_slot() -> None:
    result = plan(cursor=OUTAGE_CURSOR, rules=policy("run_all", cap=0))
    assert result.slots[0] == (MISSED[-1], NOW)
    assert (result.caught_up, result.skipped) == (1, 11)


def test_an_outage_longer_than_the_catch_up_window_is_not_walked() -> None:
    week_ago = NOW - timedelta(days=7)
    result = plan(cursor=week_ago, rules=policy("run_all", catchup_s=3600, cap=1000))
    # only the window's slots are candidates; everything before it counts as one skip
    window = fires_between(EVERY_5, NOW - timedelta(hours=1), NOW - MINUTE - EPSILON)
    assert [s for s, _ in result.slots[:-1]] == window
    assert result.slots[-1] == (NOW, NOW)
    assert result.skipped == 1
    assert result.caught_up == len(window) == 12


def test_a_snooze_delays_when_slots_may_start_not_which_slots_they_are() -> None:
    until = NOW + 7 * MINUTE
    result = plan(cursor=OUTAGE_CURSOR, lookahead=timedelta(minutes=12), snoozed_until=until)
    assert [s for s, _ in result.slots] == [MISSED[-1], NOW, NOW + 5 * MINUTE, NOW + 10 * MINUTE]
    assert [r for _, r in result.slots] == [until, until, until, NOW + 10 * MINUTE]


def test_daylight_saving_fires_once_per_wall_time_and_slots_stay_distinct() -> None:
    # Europe/Berlin falls back on 2026-10-25: 02:30 local happens twice, the schedule fires once
    night = parse_schedule("cron", "30 2 * * *", "Europe/Berlin", now=NOW)
    cursor = night.next_after(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    assert cursor is not None
    now = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    result = plan(night, cursor, now=now, lookahead=timedelta(days=3))
    instants = [s for s, _ in result.slots]
    assert instants == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first of the two
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]
    assert len({slot_key(s) for s in instants}) == 3


# --- invariants, over schedules, cursors, clocks and policies ----------------------------------

SCHEDULES = [
    EVERY_5,
    parse_schedule("cron", "0 * * * *", now=NOW),
    parse_schedule("cron", "30 2 * * *", "Europe/Berlin", now=NOW),
    parse_schedule("cron", "0 9 * * 1-5", "America/New_York", now=NOW),
    parse_schedule("rrule", "FREQ=MINUTELY;INTERVAL=7", now=NOW, dtstart=NOW - timedelta(days=30)),
]


@settings(max_examples=300, deadline=None)
@given(
    schedule=st.sampled_from(SCHEDULES),
    cursor_back=st.integers(min_value=0, max_value=3 * 86_400),
    lookahead_s=st.integers(min_value=0, max_value=7200),
    misfire=st.sampled_from(MISFIRE_POLICIES),
    grace_s=st.integers(min_value=0, max_value=3600),
    catchup_s=st.integers(min_value=0, max_value=2 * 86_400),
    cap=st.integers(min_value=0, max_value=50),
    snooze_s=st.one_of(st.none(), st.integers(min_value=-3600, max_value=3600)),
)
def test_the_plan_matches_the_fire_times_and_the_policy(
    schedule: Schedule,
    cursor_back: int,
    lookahead_s: int,
    misfire: Misfire,
    grace_s: int,
    catchup_s: int,
    cap: int,
    snooze_s: int | None,
) -> None:
    cursor = schedule.next_after(NOW - timedelta(seconds=cursor_back) - EPSILON)
    assert cursor is not None
    horizon = NOW + timedelta(seconds=lookahead_s)
    snoozed_until = None if snooze_s is None else NOW + timedelta(seconds=snooze_s)
    rules = Policy(misfire, grace_s, catchup_s, cap)
    result = plan_slots(
        schedule, cursor, now=NOW, horizon=horizon, policy=rules, snoozed_until=snoozed_until
    )

    # the candidates: every fire time from the cursor (or the catch-up window) to the horizon
    window_start = NOW - timedelta(seconds=catchup_s)
    beyond_window = cursor < window_start
    candidates = fires_between(schedule, window_start if beyond_window else cursor, horizon)
    late_before = NOW - timedelta(seconds=grace_s)
    missed = [t for t in candidates if t < late_before]
    on_time = [t for t in candidates if t >= late_before]
    if misfire == "skip":
        kept: list[datetime] = []
    elif misfire == "run_once":
        kept = missed[-1:]
    else:
        kept = missed[-max(1, cap) :]

    scheduled = [s for s, _ in result.slots]
    assert scheduled == kept + on_time
    assert scheduled == sorted(set(scheduled))  # strictly increasing
    floor = snoozed_until or datetime.min.replace(tzinfo=UTC)
    for s, run_at in result.slots:
        # a missed slot starts now (never "on time" in the past); the others at their instant
        assert run_at == max(NOW if s < late_before else s, floor)
    assert result.next_run_at is None or result.next_run_at > horizon
    assert result.next_run_at == schedule.next_after(candidates[-1] if candidates else horizon)
    # every missed fire time is run, coalesced or skipped: exactly one of them (the walk that
    # jumps over the time before the catch-up window counts as one skip)
    assert result.skipped + result.coalesced + len(kept) == len(missed) + beyond_window
    assert result.caught_up == (len(kept) if misfire == "run_all" else 0)
    assert result.coalesced == (max(0, len(missed) - 1) if misfire == "run_once" else 0)


# --- names of a slot --------------------------------------------------------------------------


def test_slot_keys_name_the_utc_instant_to_the_microsecond() -> None:
    assert slot_key(NOW) == "sched:2026-03-02T12:00:00.000000Z"
    assert slot_key(NOW + EPSILON) == "sched:2026-03-02T12:00:00.000001Z"
    assert slot_key(NOW) != slot_key(NOW + EPSILON)


@given(st.uuids(), st.uuids(), st.text(max_size=40), st.text(max_size=40))
def test_idempotency_keys_are_stable_and_tell_slots_and_tasks_apart(
    task: uuid.UUID, other_task: uuid.UUID, slot: str, other_slot: str
) -> None:
    key = idempotency_key(task, slot)
    assert re.fullmatch(r"ord-[0-9a-f]{32}", key)
    assert idempotency_key(task, slot) == key
    if other_slot != slot:
        assert idempotency_key(task, other_slot) != key
    if other_task != task:
        assert idempotency_key(other_task, slot) != key


def test_a_stored_schedule_is_compiled_once_and_read_even_in_the_past() -> None:
    # a one-shot that already fired must stay readable (parse_schedule would refuse it)
    args = ("once", "2020-01-01T00:00:00+00:00", "UTC", None)
    first = stored_schedule(*args)
    assert stored_schedule(*args) is first
    assert first.next_after(NOW) is None
    with pytest.raises(InvalidSchedule, match="in the past"):
        parse_schedule("once", "2020-01-01T00:00:00+00:00", now=NOW)
