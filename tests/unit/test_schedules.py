"""ordinaut.schedules: cron / RRULE / once / event / condition semantics in IANA zones.

Every instant is pinned and aware. DST facts used below are asserted against zoneinfo first
(test_transition_facts), so a wrong expectation fails there rather than looking like a bug.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from ordinaut.errors import InvalidSchedule
from ordinaut.schedules import Schedule, describe, parse_schedule
from ordinaut.vocabulary import SCHEDULE_KINDS, TIME_KINDS

NY = "America/New_York"
CHISINAU = "Europe/Chisinau"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # a Thursday


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def parse(kind: str, expr: str, tz: str = "UTC", **kw: object) -> Schedule:
    kw.setdefault("now", NOW)
    return parse_schedule(kind, expr, tz, **kw)


def fires(kind: str, expr: str, tz: str, start: datetime, n: int, **kw: object) -> list[datetime]:
    return parse(kind, expr, tz, **kw).fire_times(start, None, n)


def rejected_field(kind: str, expr: str, tz: str = "UTC", **kw: object) -> str:
    with pytest.raises(InvalidSchedule) as caught:
        parse(kind, expr, tz, **kw)
    assert caught.value.message == caught.value.details[0]["message"]
    return str(caught.value.details[0]["field"])


def test_transition_facts() -> None:
    def offset(zone: str, at: datetime) -> timedelta:
        return at.astimezone(ZoneInfo(zone)).utcoffset() or timedelta()

    hours = timedelta(hours=1)
    # New York: 02:00 EST -> 03:00 EDT on 8 March, 02:00 EDT -> 01:00 EST on 1 November 2026.
    assert offset(NY, utc(2026, 3, 8, 6, 59)) == -5 * hours
    assert offset(NY, utc(2026, 3, 8, 7, 0)) == -4 * hours
    assert offset(NY, utc(2026, 11, 1, 5, 59)) == -4 * hours
    assert offset(NY, utc(2026, 11, 1, 6, 0)) == -5 * hours
    # Chisinau: 02:00 -> 03:00 on 29 March, 03:00 -> 02:00 on 25 October 2026 (both 00:00 UTC).
    assert offset(CHISINAU, utc(2026, 3, 28, 23, 59)) == 2 * hours
    assert offset(CHISINAU, utc(2026, 3, 29, 0, 0)) == 3 * hours
    assert offset(CHISINAU, utc(2026, 10, 24, 23, 59)) == 3 * hours
    assert offset(CHISINAU, utc(2026, 10, 25, 0, 0)) == 2 * hours


# --- cron -------------------------------------------------------------------------------------


def test_cron_is_evaluated_in_its_zone() -> None:
    got = fires("cron", "0 8 * * 1-5", CHISINAU, utc(2026, 1, 16), 3)  # Friday
    assert got == [utc(2026, 1, 16, 6), utc(2026, 1, 19, 6), utc(2026, 1, 20, 6)]


def test_default_zone_is_utc() -> None:
    schedule = parse_schedule("cron", "0 8 * * *", now=NOW)
    assert schedule.timezone == "UTC"
    assert schedule.next_after(NOW) == utc(2026, 1, 16, 8)


@pytest.mark.parametrize(
    ("spelled", "plain"),
    [
        ("0 8 * * MON-FRI", "0 8 * * 1-5"),
        ("0 8 * * mon,Wed,FRI", "0 8 * * 1,3,5"),
        ("0 0 1 JAN,jul *", "0 0 1 1,7 *"),
        ("0 0 1 feb-apr *", "0 0 1 2-4 *"),
        ("0 9 * * 7", "0 9 * * 0"),
        ("0 9 * * SUN", "0 9 * * 0"),
        ("0 9 * * 5-7", "0 9 * * 0,5,6"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@HOURLY", "0 * * * *"),
        ("5/20 * * * *", "5,25,45 * * * *"),
    ],
)
def test_cron_spellings_are_equivalent(spelled: str, plain: str) -> None:
    assert fires("cron", spelled, NY, NOW, 12) == fires("cron", plain, NY, NOW, 12)


def test_cron_steps_ranges_lists() -> None:
    got = fires("cron", "*/20 9-17/4 * * *", "UTC", utc(2026, 1, 15), 5)
    assert got == [utc(2026, 1, 15, h, m) for h, m in [(9, 0), (9, 20), (9, 40), (13, 0), (13, 20)]]


def test_cron_expression_is_normalized() -> None:
    assert parse("cron", "  0   8 * *  mon-fri ").expr == "0 8 * * MON-FRI"
    assert parse("cron", "@Daily").expr == "@daily"


def test_vixie_or_rule_when_both_day_fields_are_restricted() -> None:
    # April 2026: the 13th is a Monday; Fridays are the 3rd, 10th, 17th and 24th.
    got = fires("cron", "0 0 13 * 5", "UTC", utc(2026, 4, 1), 5)
    assert [d.day for d in got] == [3, 10, 13, 17, 24]


def test_day_fields_combine_with_and_when_one_is_star() -> None:
    assert [d.day for d in fires("cron", "0 0 * * 5", "UTC", utc(2026, 4, 1), 3)] == [3, 10, 17]
    assert [d.month for d in fires("cron", "0 0 13 * *", "UTC", utc(2026, 4, 1), 2)] == [4, 5]
    # As in Vixie cron a field counts as "*" when it starts with '*': */2 (odd days) AND Friday.
    got = fires("cron", "0 0 */2 * 5", "UTC", utc(2026, 4, 1), 3)
    assert got == [utc(2026, 4, 3), utc(2026, 4, 17), utc(2026, 5, 1)]


def test_leap_day_cron_waits_for_a_leap_year() -> None:
    got = fires("cron", "0 12 29 2 *", CHISINAU, NOW, 2)
    assert got == [utc(2028, 2, 29, 10), utc(2032, 2, 29, 10)]


def test_leap_day_or_monday_is_legal() -> None:
    # OR rule: 29 February or any Monday in February.
    got = fires("cron", "59 23 29 2 1", "UTC", NOW, 3)
    assert got == [utc(2026, 2, 2, 23, 59), utc(2026, 2, 9, 23, 59), utc(2026, 2, 16, 23, 59)]
    assert utc(2028, 2, 29, 23, 59) in fires("cron", "59 23 29 2 1", "UTC", utc(2028, 2, 20), 3)


# --- cron across DST --------------------------------------------------------------------------


def test_spring_forward_shifts_a_missing_time_by_the_gap() -> None:
    got = fires("cron", "30 2 * * *", NY, utc(2026, 3, 7), 3)
    # 8 March 02:30 does not exist: it fires at 03:30 EDT = 07:30Z; the next day at 02:30 EDT.
    assert got == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]
    got = fires("cron", "30 2 * * *", CHISINAU, utc(2026, 3, 28), 2)
    assert got == [utc(2026, 3, 28, 0, 30), utc(2026, 3, 29, 0, 30)]  # 03:30 EEST


def test_spring_forward_never_fires_one_instant_twice() -> None:
    got = fires("cron", "*/30 * * * *", NY, utc(2026, 3, 8, 6), 4)
    # 02:00 and 02:30 shift onto 03:00 and 03:30, which are also matches: each fires once.
    assert got == [
        utc(2026, 3, 8, 6, 30),
        utc(2026, 3, 8, 7),
        utc(2026, 3, 8, 7, 30),
        utc(2026, 3, 8, 8),
    ]
    got = fires("cron", "30 2,3 * * *", NY, utc(2026, 3, 8), 2)
    assert got == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]


def test_next_after_inside_the_gap() -> None:
    schedule = parse("cron", "30 2 * * *", NY)
    assert schedule.next_after(utc(2026, 3, 8, 7, 10)) == utc(2026, 3, 8, 7, 30)  # from 03:10 EDT
    assert schedule.next_after(utc(2026, 3, 8, 7, 30)) == utc(2026, 3, 9, 6, 30)


def test_fall_back_fixed_hour_fires_once_at_first_occurrence() -> None:
    got = fires("cron", "30 1 * * *", NY, utc(2026, 10, 31, 12), 2)
    assert got == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]  # 01:30 EDT, then EST
    got = fires("cron", "30 2 * * *", CHISINAU, utc(2026, 10, 24, 12), 2)
    assert got == [utc(2026, 10, 24, 23, 30), utc(2026, 10, 26, 0, 30)]  # 02:30 EEST, then EET
    got = fires("cron", "30 0-3 * * *", NY, utc(2026, 11, 1, 4), 4)
    assert got == [utc(2026, 11, 1, h, 30) for h in (4, 5, 7, 8)]  # a range is not a wildcard


def test_fall_back_wildcard_hour_fires_both_real_hours() -> None:
    got = fires("cron", "30 * * * *", NY, utc(2026, 11, 1, 4), 4)
    assert got == [utc(2026, 11, 1, h, 30) for h in (4, 5, 6, 7)]  # 00:30, 01:30 x2, 02:30
    got = fires("cron", "30 * * * *", CHISINAU, utc(2026, 10, 24, 22), 4)
    assert got == [utc(2026, 10, 24, 22, 30), utc(2026, 10, 24, 23, 30)] + [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
    ]


def test_fall_back_interleaves_the_two_hours_in_instant_order() -> None:
    # Wall order 01:00, 01:30 yields instants 05:00, 06:00, 05:30, 06:30: they must come sorted.
    got = fires("cron", "0,30 * * * *", NY, utc(2026, 11, 1, 4, 45), 6)
    assert got == [utc(2026, 11, 1, h, m) for h in (5, 6, 7) for m in (0, 30)]


def test_next_after_inside_the_repeated_hour() -> None:
    inside = utc(2026, 11, 1, 5, 45)  # 01:45 EDT, before the clocks go back
    assert parse("cron", "30 1 * * *", NY).next_after(inside) == utc(2026, 11, 2, 6, 30)
    assert parse("cron", "30 * * * *", NY).next_after(inside) == utc(2026, 11, 1, 6, 30)


# --- cron validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 30 2 *",  # never: no 30 February
        "0 0 31 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 * * * *",  # six fields (seconds or years)
        "0 0 * *",
        "@reboot",
        "@fortnightly",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * 0 *",
        "* * * * 8",
        "5-3 * * * *",
        "*/0 * * * *",
        "*/61 * * * *",
        "MON * * * *",
        "* * * * FOO",
        "0 0 L * *",
        "0 0 * * MON#2",
        "0 0 ? * *",
        "1,,2 * * * *",
        "hello world",
        "-1 * * * *",
    ],
)
def test_invalid_cron_is_rejected_on_expr(expr: str) -> None:
    assert rejected_field("cron", expr) == "schedule_expr"


def test_min_interval() -> None:
    parse("cron", "* * * * *", min_interval_s=60)
    parse("cron", "*/5 * * * *", min_interval_s=300)
    parse("cron", "0 8,9 * * *", min_interval_s=3600)
    assert rejected_field("cron", "* * * * *", min_interval_s=300) == "schedule_expr"
    assert rejected_field("cron", "0,1 8 * * *", min_interval_s=300) == "schedule_expr"
    assert rejected_field("cron", "0,58 8,9 * * *", min_interval_s=300) == "schedule_expr"


# --- rrule ------------------------------------------------------------------------------------

DAILY_5PM = "DTSTART;TZID=Europe/Chisinau:20260130T170000\nRRULE:FREQ=DAILY;COUNT=3"


def test_rrule_with_dtstart_tzid_and_count() -> None:
    schedule = parse("rrule", DAILY_5PM, CHISINAU)
    assert schedule.dtstart == utc(2026, 1, 30, 15)
    assert schedule.fire_times(NOW, None, 10) == [utc(2026, 1, d, 15) for d in (30, 31)] + [
        utc(2026, 2, 1, 15)
    ]
    assert schedule.next_after(utc(2026, 2, 1, 15)) is None


def test_rrule_normalized_text_round_trips() -> None:
    schedule = parse(
        "rrule", "rrule:freq=daily;count=3  dtstart;TZID=Europe/Chisinau:20260130T170000", CHISINAU
    )
    assert schedule.expr == DAILY_5PM
    assert parse("rrule", schedule.expr, CHISINAU) == schedule
    assert Schedule("rrule", schedule.expr, CHISINAU, schedule.dtstart) == schedule
    assert dataclasses.asdict(schedule) == {
        "kind": "rrule",
        "expr": DAILY_5PM,
        "timezone": CHISINAU,
        "dtstart": utc(2026, 1, 30, 15),
    }


def test_rrule_utc_dtstart_keeps_local_wall_time_across_dst() -> None:
    schedule = parse("rrule", "DTSTART:20260130T170000Z\nRRULE:FREQ=DAILY", CHISINAU)
    assert schedule.expr.startswith("DTSTART;TZID=Europe/Chisinau:20260130T190000\n")
    assert schedule.next_after(utc(2026, 3, 1)) == utc(2026, 3, 1, 17)  # 19:00 EET
    assert schedule.next_after(utc(2026, 4, 1)) == utc(2026, 4, 1, 16)  # 19:00 EEST


def test_rrule_without_dtstart_anchors_at_the_minute_of_now() -> None:
    now = datetime(2026, 1, 15, 12, 0, 30, 500_000, tzinfo=UTC)
    schedule = parse("rrule", "FREQ=HOURLY", now=now)
    assert schedule.dtstart == utc(2026, 1, 15, 12, 0)
    assert schedule.next_after(now) == utc(2026, 1, 15, 13, 0)
    written = parse("rrule", "DTSTART:20260115T120030Z\nRRULE:FREQ=HOURLY", now=now)
    assert written.next_after(now) == utc(2026, 1, 15, 13, 0, 30)


def test_rrule_uses_the_persisted_anchor() -> None:
    anchor = utc(2025, 6, 1, 9, 15)
    schedule = parse("rrule", "FREQ=DAILY", dtstart=anchor)
    assert schedule.dtstart == anchor
    assert schedule.next_after(NOW) == utc(2026, 1, 16, 9, 15)
    assert Schedule("rrule", "FREQ=DAILY", "UTC", anchor).next_after(NOW) == utc(2026, 1, 16, 9, 15)


@pytest.mark.parametrize(
    "until",
    ["20260201T170000", "20260201T150000Z", "20260201"],  # local wall, UTC, whole local day
)
def test_rrule_until_is_inclusive(until: str) -> None:
    expr = f"DTSTART;TZID=Europe/Chisinau:20260130T170000\nRRULE:FREQ=DAILY;UNTIL={until}"
    got = parse("rrule", expr, CHISINAU).fire_times(NOW, None, 10)
    assert got == [utc(2026, 1, 30, 15), utc(2026, 1, 31, 15), utc(2026, 2, 1, 15)]


def test_rrule_dst_follows_the_cron_rules() -> None:
    spring = "DTSTART;TZID=America/New_York:20260306T023000\nRRULE:FREQ=DAILY;COUNT=4"
    got = parse("rrule", spring, NY, now=utc(2026, 3, 1)).fire_times(utc(2026, 3, 1), None, 9)
    assert got == [utc(2026, 3, 6, 7, 30), utc(2026, 3, 7, 7, 30)] + [
        utc(2026, 3, 8, 7, 30),  # 02:30 does not exist: 03:30 EDT
        utc(2026, 3, 9, 6, 30),
    ]
    fall = "DTSTART;TZID=America/New_York:20261031T013000\nRRULE:FREQ=DAILY;COUNT=3"
    got = parse("rrule", fall, NY, now=utc(2026, 10, 1)).fire_times(utc(2026, 10, 1), None, 9)
    assert got == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    hourly = "DTSTART;TZID=America/New_York:20261031T000000\nRRULE:FREQ=HOURLY"
    got = parse("rrule", hourly, NY, now=utc(2026, 10, 1)).fire_times(
        utc(2026, 11, 1, 3, 30), None, 3
    )
    assert got == [utc(2026, 11, 1, 4), utc(2026, 11, 1, 5), utc(2026, 11, 1, 7)]  # 01:00 once


def test_rrule_wkst_matters_as_in_rfc_5545() -> None:
    # The RFC 5545 example: every other week on Tuesday and Sunday, four times.
    now = utc(1997, 8, 1)
    rule = "DTSTART;TZID=America/New_York:19970805T090000\nRRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU"
    monday = parse("rrule", rule + ";WKST=MO", NY, now=now).fire_times(now, None, 9)
    sunday = parse("rrule", rule + ";WKST=SU", NY, now=now).fire_times(now, None, 9)
    assert [d.day for d in monday] == [5, 10, 19, 24]
    assert [d.day for d in sunday] == [5, 17, 19, 31]


def test_rrule_ordinal_weekday() -> None:
    rule = "DTSTART;TZID=Europe/Chisinau:20260101T090000\nRRULE:FREQ=MONTHLY;BYDAY=-1FR"
    got = parse("rrule", rule, CHISINAU).fire_times(NOW, None, 3)
    assert got == [utc(2026, 1, 30, 7), utc(2026, 2, 27, 7), utc(2026, 3, 27, 7)]


def test_long_running_rrule_is_exact() -> None:
    schedule = parse("rrule", "DTSTART:20000101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=7")
    minutes = int((NOW - utc(2000, 1, 1)).total_seconds()) // 60
    expected = utc(2000, 1, 1) + timedelta(minutes=(minutes // 7 + 1) * 7)
    assert schedule.next_after(NOW) == expected


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;BYWEEKNO=1,53;BYDAY=MO",
        "FREQ=YEARLY;INTERVAL=3;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=-1",
        "FREQ=MONTHLY;BYMONTHDAY=31",
        "FREQ=MONTHLY;INTERVAL=7;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=WEEKLY;INTERVAL=3;WKST=SU;BYDAY=SU,SA",
        "FREQ=DAILY;INTERVAL=9",
        "FREQ=HOURLY;INTERVAL=5;BYHOUR=1,6,11,16,21",
        "FREQ=MINUTELY;INTERVAL=997",
        "FREQ=HOURLY;INTERVAL=6;BYMINUTE=5,50",  # evaluated as DAILY
        "FREQ=MINUTELY;INTERVAL=15;BYHOUR=9,17",  # evaluated as DAILY
    ],
)
def test_rrule_matches_dateutil_after_years_of_running(rule: str) -> None:
    # Evaluation restarts from a recent period instead of DTSTART; it must not change answers.
    anchor = datetime(2019, 5, 31, 13, 47, 5)
    schedule = Schedule("rrule", f"DTSTART;TZID=UTC:{anchor:%Y%m%dT%H%M%S}\nRRULE:{rule}", "UTC")
    for after in (datetime(2026, 1, 15, 12), datetime(2031, 7, 4, 6, 30)):
        reference = rrulestr(f"RRULE:{rule}", dtstart=anchor).xafter(after)
        expected = [d.replace(tzinfo=UTC) for d in itertools.islice(reference, 6)]
        assert schedule.fire_times(after.replace(tzinfo=UTC), None, 6) == expected


@pytest.mark.parametrize(
    "expr",
    [
        "FREQ=SECONDLY",
        "FREQ=MINUTELY;BYSECOND=0,30",  # sub-minute
        "FREQ=DAILY;BYSECOND=0,30",
        "FREQ=HOURLY;BYSETPOS=1",  # dateutil would walk every hour when it matches nothing
        "FREQ=MINUTELY;INTERVAL=7;BYHOUR=9",  # ... or every minute towards 09:00
        "FREQ=HOURLY;INTERVAL=5;BYMINUTE=0,5,10,15,20,25,30,35,40,45,50,55",
        "FREQ=MONTHLY;BYDAY=6MO",
        "FREQ=FORTNIGHTLY",
        "FREQ=DAILY;BYHOUR=25",
        "FREQ=DAILY;BYMONTHDAY=0",
        "FREQ=DAILY;FOO=1",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;INTERVAL=2,3",
        "FREQ=DAILY;INTERVAL=1;INTERVAL=2",
        "FREQ=DAILY;;",
        "FREQ=DAILY;BYDAY=2MO",  # ordinals need MONTHLY or YEARLY
        "FREQ=MONTHLY;BYDAY=0MO",
        "FREQ=MONTHLY;BYDAY=XX",
        "FREQ=DAILY;COUNT=3;UNTIL=20270101T000000Z",
        "FREQ=DAILY;UNTIL=2027",
        "BYHOUR=9",
        "RRULE:",
        "EXDATE:20260101T000000Z\nRRULE:FREQ=DAILY",
        "RRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY",
        "DTSTART:2026-01-30\nRRULE:FREQ=DAILY",
        "DTSTART:20260230T000000Z\nRRULE:FREQ=DAILY",
        "DTSTART:18000101T000000Z\nRRULE:FREQ=DAILY",
        "DTSTART:20260130T170000Z\nRRULE:FREQ=DAILY;UNTIL=20260101T000000Z",  # UNTIL < DTSTART
        "DTSTART:20200101T000000Z\nRRULE:FREQ=DAILY;COUNT=3",  # all in the past
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",  # never
    ],
)
def test_invalid_rrule_is_rejected_on_expr(expr: str) -> None:
    assert rejected_field("rrule", expr) == "schedule_expr"


def test_rrule_min_interval_and_tzid_mismatch() -> None:
    parse("rrule", "FREQ=MINUTELY;INTERVAL=5", min_interval_s=300)
    assert rejected_field("rrule", "FREQ=MINUTELY", min_interval_s=300) == "schedule_expr"
    assert rejected_field("rrule", DAILY_5PM, NY) == "timezone"


# --- once, event, condition -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tz", "instant"),
    [
        ("2026-03-01T09:00:00", NY, utc(2026, 3, 1, 14)),  # naive: read in the task's zone
        ("2026-03-01 09:00", CHISINAU, utc(2026, 3, 1, 7)),
        ("2026-03-01T09:00:00Z", NY, utc(2026, 3, 1, 9)),
        ("2026-03-01T09:00:00+02:00", NY, utc(2026, 3, 1, 7)),
        ("2026-03-08T02:30:00", NY, utc(2026, 3, 8, 7, 30)),  # in the gap: 03:30 EDT
        ("2026-11-01T01:30:00", NY, utc(2026, 11, 1, 5, 30)),  # repeated: first, EDT
        ("2026-01-15T11:59:30+00:00", "UTC", utc(2026, 1, 15, 11, 59, 30)),  # within a minute
    ],
)
def test_once(text: str, tz: str, instant: datetime) -> None:
    schedule = parse("once", text, tz)
    assert schedule.expr == instant.isoformat()
    assert schedule.next_after(instant - timedelta(seconds=1)) == instant
    assert schedule.next_after(instant) is None
    assert schedule.fire_times(utc(2020, 1, 1), None, 5) == [instant]


@pytest.mark.parametrize(
    "text", ["2026-01-15T11:58:59Z", "yesterday", "2026-13-01T00:00", "0001-01-01T00:00+05:00"]
)
def test_invalid_once(text: str) -> None:
    assert rejected_field("once", text) == "schedule_expr"


def test_event_topic() -> None:
    schedule = parse("event", "orders.created:eu-*")
    assert schedule.expr == "orders.created:eu-*"
    assert schedule.next_after(NOW) is None
    assert schedule.fire_times(NOW, None, 5) == []
    for bad in ("orders created", "x" * 201, "naïve", "a/b"):
        assert rejected_field("event", bad) == "schedule_expr"


def test_condition_polls_on_a_cron() -> None:
    schedule = parse("condition", "*/5 * * * *", CHISINAU)
    assert schedule.fire_times(NOW, None, 2) == [utc(2026, 1, 15, 12, 5), utc(2026, 1, 15, 12, 10)]
    assert rejected_field("condition", "* * * * *", min_interval_s=120) == "schedule_expr"
    assert rejected_field("condition", "every 5m") == "schedule_expr"


# --- inputs shared by every kind --------------------------------------------------------------


@pytest.mark.parametrize(
    "tz",
    [
        "Mars/Olympus",
        "",
        "../etc/passwd",
        "America",
        "utc ",
        "UTC\x00",
        "Factory",
        "posixrules",
        "localtime",
        "right/UTC",
        "/usr/share/zoneinfo/UTC",
        "us/eastern",
    ],
)
def test_unknown_zone_is_rejected_on_timezone(tz: str) -> None:
    assert rejected_field("cron", "0 8 * * *", tz) == "timezone"


@pytest.mark.parametrize("tz", ["US/Eastern", "Europe/Kiev", "Etc/GMT-14", "UTC", "EST5EDT"])
def test_iana_links_are_zones(tz: str) -> None:
    assert parse("cron", "0 8 * * *", tz).timezone == tz


@pytest.mark.parametrize("kind", ["interval", "", "CRON", None])
def test_unknown_kind_is_rejected_on_schedule_kind(kind: str) -> None:
    assert rejected_field(kind, "0 8 * * *") == "schedule_kind"


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_empty_or_overlong_expr_is_rejected(kind: str) -> None:
    assert rejected_field(kind, "   ") == "schedule_expr"
    assert rejected_field(kind, "0" * 1001) == "schedule_expr"
    assert rejected_field(kind, "0 8 * * *", max_expr_length=5) == "schedule_expr"


def test_naive_instants_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="now must be a timezone-aware datetime"):
        parse_schedule("cron", "0 8 * * *", now=datetime(2026, 1, 15))
    with pytest.raises(ValueError, match="after must be a timezone-aware datetime"):
        parse("cron", "0 8 * * *").next_after(datetime(2026, 1, 15))


def test_describe() -> None:
    assert (
        describe(parse("cron", "0 8 * * 1-5", CHISINAU)) == "cron '0 8 * * 1-5' in Europe/Chisinau"
    )
    assert describe(parse("rrule", DAILY_5PM, CHISINAU)) == (
        "rrule 'FREQ=DAILY;COUNT=3' from 20260130T170000 in Europe/Chisinau"
    )
    assert describe(parse("once", "2026-03-01T09:00:00", NY)) == (
        "once at 2026-03-01T09:00:00-05:00 in America/New_York"
    )
    assert describe(parse("event", "orders.*")) == "on events matching 'orders.*'"
    assert "*/5 * * * *" in describe(parse("condition", "*/5 * * * *"))
    assert set(TIME_KINDS) < set(SCHEDULE_KINDS)


@pytest.mark.parametrize(
    ("kind", "expr", "valid"),
    [
        ("cron", "0 0 31 2 *", False),
        ("cron", "0 0 30 2 *", False),
        ("cron", "59 23 29 2 1", True),
        ("cron", "0 0 29 2 *", True),
        ("cron", "* " * 400, False),
        ("cron", ",".join(["0"] * 450) + " * * * *", True),
        ("rrule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", False),
        ("rrule", "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30", False),
        ("rrule", "FREQ=DAILY;BYMONTH=4,6,9,11;BYMONTHDAY=31", False),
        (
            "rrule",
            "DTSTART:20270101T000000Z\nRRULE:FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",
            False,
        ),
        ("rrule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", True),  # next: 2044
        ("rrule", "FREQ=DAILY;" * 200, False),
        ("rrule", "FREQ=DAILY;BYHOUR=" + ",".join(["7"] * 400), True),
        (
            "rrule",
            "FREQ=DAILY;BYSECOND="
            + ",".join(map(str, range(60)))
            + ";BYMINUTE="
            + ",".join(map(str, range(60))),
            False,
        ),
        ("rrule", "FREQ=MINUTELY;COUNT=1000", True),
        ("rrule", "FREQ=YEARLY;COUNT=1000", True),
        ("rrule", "FREQ=DAILY;COUNT=1001", False),
        ("rrule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=1000", True),
        ("rrule", "FREQ=WEEKLY;BYWEEKNO=-1;BYYEARDAY=366;COUNT=196", True),
        ("rrule", "FREQ=MINUTELY;BYHOUR=20;BYMONTH=8,10;BYYEARDAY=60", False),
        ("rrule", "FREQ=HOURLY;INTERVAL=5;BYMINUTE=0,30;BYMONTH=2;BYMONTHDAY=30", False),
        ("rrule", "FREQ=DAILY;BYSETPOS=-60", False),
        ("rrule", "FREQ=MINUTELY;INTERVAL=10000;BYHOUR=3;BYMINUTE=7", False),
    ],
)
def test_pathological_inputs_finish(kind: str, expr: str, valid: bool) -> None:
    # No timing assertion: the point is that these run (and the suite stays fast).
    if not valid:
        assert rejected_field(kind, expr) == "schedule_expr"
        return
    schedule = parse(kind, expr)
    assert len(schedule.fire_times(NOW, None, 3)) == 3


# --- properties -------------------------------------------------------------------------------

SAMPLES = [
    Schedule("cron", "30 2 * * *", NY),
    Schedule("cron", "*/7 1-3 * * *", CHISINAU),
    Schedule("cron", "15,45 * * * *", "Australia/Lord_Howe"),  # a 30-minute DST shift
    Schedule("cron", "0 0 13 * 5", "UTC"),
    Schedule(
        "rrule", "DTSTART;TZID=America/New_York:20250101T013000\nRRULE:FREQ=HOURLY;INTERVAL=5", NY
    ),
    Schedule(
        "rrule",
        "DTSTART;TZID=Europe/Chisinau:20240229T023000\nRRULE:FREQ=MONTHLY;BYMONTHDAY=-1",
        CHISINAU,
    ),
    Schedule("once", "2030-01-01T00:00:00+00:00", "UTC"),
]
TRANSITIONS = [
    utc(2026, 3, 8, 7),
    utc(2026, 11, 1, 6),
    utc(2026, 3, 29),
    utc(2026, 10, 25),
    utc(2026, 4, 4, 15),
]
instants = st.one_of(
    st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2034, 1, 1), timezones=st.just(UTC)
    ),
    st.tuples(st.sampled_from(TRANSITIONS), st.integers(-4 * 3600, 4 * 3600)).map(
        lambda pair: pair[0] + timedelta(seconds=pair[1])
    ),
)


@settings(max_examples=150, deadline=None)
@given(schedule=st.sampled_from(SAMPLES), after=instants)
def test_next_after_is_strictly_later(schedule: Schedule, after: datetime) -> None:
    following = schedule.next_after(after)
    assert following is None or (following > after and following.utcoffset() == timedelta())


@settings(max_examples=100, deadline=None)
@given(schedule=st.sampled_from(SAMPLES), start=instants)
def test_fire_times_strictly_increase_and_agree_with_next_after(
    schedule: Schedule, start: datetime
) -> None:
    times = schedule.fire_times(start, None, 8)
    assert all(a < b for a, b in itertools.pairwise([start, *times]))
    if times:
        assert schedule.next_after(start) == times[0]


def test_min_interval_sees_dst_closing_a_cron_gap() -> None:
    # 01:59 EST and 03:00 EDT are one minute apart on 2026-03-08 in New York, though the
    # wall-clock grid never puts two fires closer than 59 minutes.
    now = datetime(2026, 1, 10, tzinfo=UTC)
    with pytest.raises(InvalidSchedule) as info:
        parse_schedule("cron", "0,59 1,3 * * *", "America/New_York", now=now, min_interval_s=120)
    assert "2026-03-08T06:59:00" in info.value.message
    parse_schedule("cron", "0,59 1,3 * * *", "UTC", now=now, min_interval_s=120)
