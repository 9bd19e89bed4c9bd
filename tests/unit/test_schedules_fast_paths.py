"""The cheap paths of ordinaut.schedules that a task write takes, against plain references.

- ``_stream`` hands out a fire time as soon as it is final (one wall time read per
  ``next_after``, not two): checked against a minute-by-minute walk of the wall clock across
  DST gaps and folds, a 30-minute shift and a skipped day.
- the first fire after an instant is remembered per compiled schedule (``_first_after``):
  a write checks it and asks again, writes moments apart ask alike; always what walking the
  schedule answers.
- ``_parse_cron`` is cached per (text, zone), bounded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordinaut import schedules
from ordinaut.schedules import Schedule, parse_schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def wall_clock_fires(
    minutes: set[int], hours: set[int], hour_star: bool, zone: str, start: datetime, end: datetime
) -> list[datetime]:
    """The documented model, minute by minute: every matching wall minute maps to its first
    occurrence (fold=0; in a gap, shifted forward), plus its second for a wildcard hour."""
    tz = ZoneInfo(zone)
    wall = start.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0) - timedelta(days=2)
    stop = end.astimezone(tz).replace(tzinfo=None) + timedelta(days=2)
    found: set[datetime] = set()
    while wall <= stop:
        if wall.minute in minutes and wall.hour in hours:
            first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
            found.add(first)
            second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
            if hour_star and second > first:
                found.add(second)
        wall += timedelta(minutes=1)
    return sorted(i for i in found if start < i < end)


ALL_HOURS = set(range(24))
# (cron, minutes, hours, hour field is a wildcard, zone, an instant near an offset change)
CRONS = [
    ("30 2 * * *", {30}, {2}, False, "America/New_York", utc(2026, 3, 8, 7)),  # in the gap
    ("30 1 * * *", {30}, {1}, False, "America/New_York", utc(2026, 11, 1, 6)),  # repeated
    ("*/20 * * * *", {0, 20, 40}, ALL_HOURS, True, "America/New_York", utc(2026, 11, 1, 6)),
    ("*/20 * * * *", {0, 20, 40}, ALL_HOURS, True, "America/New_York", utc(2026, 3, 8, 7)),
    ("0 1-3 * * *", {0}, {1, 2, 3}, False, "Europe/Chisinau", utc(2026, 3, 29)),
    ("0 1-3 * * *", {0}, {1, 2, 3}, False, "Europe/Chisinau", utc(2026, 10, 25)),
    ("*/7 * * * *", set(range(0, 60, 7)), ALL_HOURS, True, "Europe/Chisinau", utc(2026, 10, 25)),
    ("15,45 * * * *", {15, 45}, ALL_HOURS, True, "Australia/Lord_Howe", utc(2026, 4, 4, 15)),
    ("15,45 * * * *", {15, 45}, ALL_HOURS, True, "Australia/Lord_Howe", utc(2026, 10, 3, 16)),
    ("0 0 * * *", {0}, {0}, False, "America/Santiago", utc(2026, 9, 6, 4)),  # gap at midnight
    ("30 * * * *", {30}, ALL_HOURS, True, "Pacific/Apia", utc(2011, 12, 30, 10)),  # a lost day
    ("0 12 * * *", {0}, {12}, False, "Pacific/Apia", utc(2011, 12, 30, 10)),
]


@pytest.mark.parametrize(("expr", "minutes", "hours", "star", "zone", "change"), CRONS)
@pytest.mark.parametrize("lead", [timedelta(days=2), timedelta(hours=5), timedelta(minutes=31)])
def test_cron_fires_match_the_wall_clock_walk_across_offset_changes(
    expr: str,
    minutes: set[int],
    hours: set[int],
    star: bool,
    zone: str,
    change: datetime,
    lead: timedelta,
) -> None:
    start, end = change - lead, change + timedelta(days=2)
    expected = wall_clock_fires(minutes, hours, star, zone, start, end)
    assert expected, "the window holds fires"
    schedule = Schedule("cron", expr, zone)
    assert schedule.fire_times(start, end, 10_000) == expected
    # next_after from every fire (and just before it) walks the same sequence
    for previous, following in zip([start, *expected], expected, strict=False):
        assert schedule.next_after(previous) == following
        assert schedule.next_after(following - timedelta(microseconds=1)) == following


CASES = [
    ("cron", "30 2 * * *", "America/New_York"),
    ("cron", "*/20 * * * *", "America/New_York"),
    ("cron", "0 1-3 * * *", "Europe/Chisinau"),
    ("cron", "15,45 * * * *", "Australia/Lord_Howe"),
    ("condition", "*/5 * * * *", "Europe/Chisinau"),
    ("rrule", "FREQ=HOURLY;INTERVAL=5", "America/New_York"),
    ("rrule", "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "America/New_York"),
    ("rrule", "FREQ=DAILY;COUNT=3", "Europe/Chisinau"),
    ("once", "2026-11-01T01:30:00", "America/New_York"),  # a repeated wall time
    ("once", "2026-03-08T02:30:00", "America/New_York"),  # a wall time in the gap
]
CHANGES = [utc(2026, 3, 8, 7), utc(2026, 11, 1, 6), utc(2026, 3, 29), utc(2026, 10, 25)]
nows = st.tuples(st.sampled_from(CHANGES), st.integers(-3 * 86_400, 3 * 86_400)).map(
    lambda pair: pair[0] + timedelta(seconds=pair[1])
)
offsets = st.lists(st.integers(-3 * 86_400_000_000, 3 * 86_400_000_000), max_size=8)


@settings(max_examples=200, deadline=None)
@given(case=st.sampled_from(CASES), now=nows, more=offsets)
def test_the_remembered_first_fire_is_what_the_schedule_walk_answers(
    case: tuple[str, str, str], now: datetime, more: list[int]
) -> None:
    kind, expr, zone = case
    try:
        parsed = parse_schedule(kind, expr, zone, now=now)
    except schedules.InvalidSchedule:
        return  # a one-shot in the past, a COUNT spent: nothing remembered
    plan = parsed._plan
    first = next(plan.stream(now - timedelta(minutes=1)), None)
    around = [timedelta(0), -timedelta(minutes=1), -timedelta(microseconds=1), timedelta(days=1)]
    if first is not None:
        around += [first - now, first - now - timedelta(microseconds=1)]
    around += [timedelta(microseconds=n) for n in more]
    for delta in around:  # in any order: each answer from the memo or a walk that resets it
        walked = next(plan.stream(now + delta), None)
        assert parsed.next_after(now + delta) == walked, delta
        assert Schedule(kind, parsed.expr, zone, parsed.dtstart).next_after(now + delta) == walked


def test_a_create_reads_its_first_fire_without_walking_the_schedule_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = utc(2026, 3, 7, 12)
    expr = "30 2 * * 1-6"  # a schedule no other test parses: its plan is fresh
    parsed = parse_schedule("cron", expr, "America/New_York", now=now)
    walked: list[datetime] = []
    real = schedules._stream

    def counting(*args: object) -> object:
        walked.append(args[-1])  # type: ignore[arg-type]
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(schedules, "_stream", counting)
    assert parsed.next_after(now - timedelta(microseconds=1)) == utc(2026, 3, 9, 6, 30)
    # the next create of a task with this schedule, a second later: answered alike
    later = parse_schedule("cron", expr, "America/New_York", now=now + timedelta(seconds=1))
    assert later.next_after(now + timedelta(seconds=1)) == utc(2026, 3, 9, 6, 30)
    assert walked == []
    # outside what was remembered, the schedule is walked as ever (and that is remembered)
    assert parsed.next_after(utc(2026, 3, 9, 6, 30)) == utc(2026, 3, 10, 6, 30)
    assert parsed.next_after(utc(2026, 3, 9, 7)) == utc(2026, 3, 10, 6, 30)
    assert len(walked) == 1
    # the memo is not part of the plan's value
    fresh = schedules._parse_cron.__wrapped__(expr.upper(), ZoneInfo("America/New_York"))[1]
    assert fresh == parsed._plan
    assert hash(fresh) == hash(parsed._plan)
    assert repr(fresh) == repr(parsed._plan)


def test_cron_parses_are_cached_per_zone_and_bounded() -> None:
    new_york, chisinau = ZoneInfo("America/New_York"), ZoneInfo("Europe/Chisinau")
    text, cron = schedules._parse_cron("0  8 * * mon-fri", new_york)
    assert text == "0 8 * * MON-FRI"
    assert cron.zone is new_york
    assert schedules._parse_cron("0  8 * * mon-fri", new_york)[1] is cron
    other = schedules._parse_cron("0  8 * * mon-fri", chisinau)[1]
    assert other.zone is chisinau
    assert other != cron
    assert schedules._parse_cron.cache_info().maxsize == 1024
    with pytest.raises(schedules.InvalidSchedule):  # refusals are not cached away
        schedules._parse_cron("61 * * * *", new_york)
    with pytest.raises(schedules.InvalidSchedule):
        schedules._parse_cron("61 * * * *", new_york)
