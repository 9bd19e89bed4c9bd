"""Schedules and instants in plain words, for people and models reading a task.

Pure text work over the task's own fields: "0 8 * * 1-5" in Europe/Chisinau reads "every
weekday at 08:00 Europe/Chisinau". Anything this does not recognise is shown verbatim, so a
description is never wrong, at worst literal. The scheduler's code, not this, decides when a
task fires; fire times always come from the API.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAY_NAMES = {d[:3].lower(): i for i, d in enumerate(DAYS)}
_MONTH_NAMES = {m[:3].lower(): i + 1 for i, m in enumerate(MONTHS)}
_RRULE_DAYS = {"SU": 0, "MO": 1, "TU": 2, "WE": 3, "TH": 4, "FR": 5, "SA": 6}
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _values(field: str, names: dict[str, int], lo: int, hi: int) -> list[int] | None:
    """The values of a cron field made of numbers, names and ranges (no steps), else None."""
    out: set[int] = set()
    for part in field.lower().split(","):
        bounds = part.split("-")
        if len(bounds) > 2:
            return None
        try:
            nums = [names[b] if b in names else int(b) for b in bounds]
        except ValueError:
            return None
        if any(not lo <= n <= hi for n in nums):
            return None
        out.update(range(nums[0], nums[-1] + 1))
    return sorted(out)


def _step(field: str) -> int | None:
    """N for ``*/N``."""
    if field.startswith("*/") and field[2:].isdigit() and int(field[2:]) > 0:
        return int(field[2:])
    return None


def _weekdays(dow: str) -> tuple[str, str] | None:
    """("every weekday", "on weekdays") style phrases for a day-of-week field."""
    days = _values(dow, _DAY_NAMES, 0, 7)
    if days is None:
        return None
    days = sorted({d % 7 for d in days})
    if days == [1, 2, 3, 4, 5]:
        return "every weekday", "on weekdays"
    if days == [0, 6]:
        return "every Saturday and Sunday", "on weekends"
    if days == list(range(7)):
        return "every day", ""
    # Monday first, Sunday last, as people list a week.
    names = [DAYS[d] for d in sorted(days, key=lambda d: (d == 0, d))]
    return "every " + _join(names), "on " + _join([n + "s" for n in names])


def _days(dom: str, month: str, dow: str) -> tuple[str, str] | None:
    """(every-form, on-form) for the date fields, or None when not recognised."""
    months = "" if month == "*" else _month_words(month)
    if months is None:
        return None
    in_months = f" in {months}" if months else ""
    if dom == "*" and dow in ("*", "?"):
        return ("every day" + in_months, in_months.strip())
    if dom == "*" or dom == "?":
        week = _weekdays(dow)
        if week is None:
            return None
        return week[0] + in_months, (week[1] + in_months).strip()
    days = _values(dom, {}, 1, 31)
    if days is None:
        return None
    of = "of " + (months if months else "every month")
    text = "on the " + _join([_ordinal(d) for d in days]) + " " + of
    if dow not in ("*", "?"):
        # Vixie cron: both fields restricted means either matches.
        week = _weekdays(dow)
        if week is None:
            return None
        text = f"{text} and {week[0]}"
    return text, text


def _month_words(field: str) -> str | None:
    months = _values(field, _MONTH_NAMES, 1, 12)
    return None if months is None else _join([MONTHS[m - 1] for m in months])


def _clock(hours: Sequence[int], minutes: Sequence[int]) -> str:
    return _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])


def _times(minute: str, hour: str) -> tuple[str, bool] | None:
    """("at 08:00", True) for times of day, ("every 15 minutes", False) for frequencies."""
    minutes = _values(minute, {}, 0, 59)
    hours = _values(hour, {}, 0, 23)
    if minutes is not None and hours is not None and len(minutes) * len(hours) <= 6:
        return "at " + _clock(hours, minutes), True
    every_minutes = 1 if minute == "*" else _step(minute)
    if every_minutes is not None:
        text = "every minute" if every_minutes == 1 else f"every {every_minutes} minutes"
        if hour == "*":
            return text, False
        if hours is not None and hours == list(range(hours[0], hours[-1] + 1)):
            return f"{text} from {hours[0]:02d}:00 to {hours[-1]:02d}:59", False
        return None
    if minutes is not None and len(minutes) == 1:
        past = "on the hour" if minutes[0] == 0 else f"at minute {minutes[0]}"
        every_hours = 1 if hour == "*" else _step(hour)
        if every_hours is not None:
            text = "every hour" if every_hours == 1 else f"every {every_hours} hours"
            return f"{text} {past}", False
        if hours is not None:
            return f"every hour {past} from {hours[0]:02d}:00 to {hours[-1]:02d}:59", False
    return None


def describe_cron(expr: str) -> str:
    """A 5-field cron expression or macro in words; the expression itself when unrecognised."""
    text = " ".join(expr.split())
    fields = MACROS.get(text.lower(), text).split()
    if len(fields) != 5:
        return f"cron '{text}'"
    minute, hour, dom, month, dow = fields
    days, times = _days(dom, month, dow), _times(minute, hour)
    if days is None or times is None:
        return f"cron '{text}'"
    every_form, on_form = days
    when, at_times = times
    if at_times:
        return f"{every_form} {when}"
    return f"{when} {on_form}".strip()


def describe_rrule(expr: str) -> str:
    """An RFC 5545 RRULE in words (FREQ, INTERVAL, BYDAY, BYMONTHDAY, BYHOUR, BYMINUTE, COUNT,
    UNTIL); the rule itself when it uses more than that."""
    rule = ""
    for line in expr.strip().splitlines():
        line = line.strip()
        if line.upper().startswith("DTSTART"):
            continue
        rule = line.split(":", 1)[1] if line.upper().startswith("RRULE:") else line
    parts = dict(p.split("=", 1) for p in rule.upper().split(";") if "=" in p)
    units = {"MINUTELY": "minute", "HOURLY": "hour", "DAILY": "day", "WEEKLY": "week"}
    units.update({"MONTHLY": "month", "YEARLY": "year"})
    known = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYHOUR", "BYMINUTE", "COUNT", "UNTIL"}
    unit = units.get(parts.get("FREQ", ""))
    if unit is None or set(parts) - known:
        return f"rrule '{rule}'"
    try:
        interval = int(parts.get("INTERVAL", "1"))
        hours = [int(h) for h in parts["BYHOUR"].split(",")] if "BYHOUR" in parts else []
        minutes = [int(m) for m in parts.get("BYMINUTE", "0").split(",")]
        month_days = (
            [int(d) for d in parts["BYMONTHDAY"].split(",")] if "BYMONTHDAY" in parts else []
        )
    except ValueError:
        return f"rrule '{rule}'"
    words = [f"every {unit}" if interval == 1 else f"every {interval} {unit}s"]
    if "BYDAY" in parts:
        days = [_RRULE_DAYS.get(d[-2:]) for d in parts["BYDAY"].split(",")]
        if None in days or any(len(d) > 2 for d in parts["BYDAY"].split(",")):
            return f"rrule '{rule}'"
        words.append("on " + _join([DAYS[d] for d in days if d is not None]))
    if month_days:
        words.append("on the " + _join([_ordinal(d) for d in month_days]))
    if hours:
        words.append("at " + _clock(hours, minutes))
    text = " ".join(words)
    if "COUNT" in parts:
        text += f", {parts['COUNT']} times"
    if "UNTIL" in parts:
        text += f", until {parts['UNTIL']}"
    return text


@functools.lru_cache(maxsize=4096)  # every task read in an API response says it again
def describe_schedule(kind: str, expr: str, timezone: str = "UTC") -> str:
    """A task's schedule in words with its zone, e.g. "every weekday at 08:00 Europe/Chisinau"."""
    if kind == "event":
        return f"whenever an event matching '{expr}' is published"
    if kind == "once":
        try:
            at = datetime.fromisoformat(expr.strip().replace("Z", "+00:00"))
        except ValueError:
            return f"once at {expr} {timezone}"
        zone = _zone(timezone)
        local = at.replace(tzinfo=zone) if at.tzinfo is None else at.astimezone(zone)
        return f"once at {local:%Y-%m-%d %H:%M} {timezone}"
    if kind == "rrule":
        return f"{describe_rrule(expr)} {timezone}"
    if kind == "condition":
        return f"when its condition holds, checked on {describe_cron(expr)} {timezone}"
    return f"{describe_cron(expr)} {timezone}"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(at: datetime, timezone: str) -> str:
    """An instant as its wall time in ``timezone``, e.g. "Mon 2026-03-02 08:00 EET"."""
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(_zone(timezone))
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"


def summary(kind: str, expr: str, timezone: str, fire_times: Sequence[datetime]) -> str:
    """ "every weekday at 08:00 Europe/Chisinau, next: Mon 2026-03-02 08:00 EET, ..." """
    words = describe_schedule(kind, expr, timezone)
    if not fire_times:
        if kind == "event":
            return words
        return f"{words}, no fire times ahead"
    return f"{words}, next: " + ", ".join(local_time(t, timezone) for t in fire_times)
