"""When a task fires: cron, RRULE, one-shot, event and condition schedules in an IANA zone.

Pure: no I/O beyond reading the zoneinfo database. ``parse_schedule`` turns user input into a
:class:`Schedule` or raises ``InvalidSchedule`` naming the field, in bounded time;
``Schedule.next_after`` answers the scheduler's one question.

Wall-clock model (docs/guarantees.md, "Time zones and daylight saving time"). Cron and RRULE
produce naive local *wall times* in increasing order; each is mapped to instants with PEP 495
``fold``:

* a wall time inside a spring-forward gap resolves with ``fold=0``, the offset from before the
  gap: "shifted forward by the length of the gap" (also RFC 5545 section 3.3.5);
* a repeated wall time resolves to its first occurrence, plus the second one for crons whose
  hour field is a wildcard;
* instants come out increasing with duplicates dropped, so two wall times that land on one
  instant fire once and fire times are strictly increasing.

Near a transition a later wall time can map to an earlier instant (02:30 in the gap lands after
03:00), so :func:`_stream` holds each instant back until no wall time still to come can precede
it; between transitions that look-ahead is a single wall time.

Bounded work. Cron skips by field. RRULEs use dateutil, which iterates from DTSTART and only
gives up at year 9999; so each query restarts it at the rule's latest period before the
cursor (cost independent of the rule's age), inside a calendar-identical window that ends about
_RRULE_HORIZON_YEARS later (see :func:`_calendar_shift`). A rule silent that long is finished.
COUNT is resolved once into an inclusive UNTIL; compiled schedules are cached per process.
"""

from __future__ import annotations

import calendar
import functools
import heapq
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil import rrule as du

from ordinaut.errors import InvalidSchedule
from ordinaut.vocabulary import SCHEDULE_KINDS

_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_PAST_GRACE = timedelta(minutes=1)  # a `once` up to a minute old is "now", not a mistake
_CHECK_FIRES = 500  # the min-interval check looks at this many fires...
_CHECK_SPAN = timedelta(days=731)  # ...or two years of them, whichever ends first
_OFFSET_PROBE = timedelta(hours=36)  # wider than any real UTC-offset jump (Samoa 2011: 24 h)
_CRON_HORIZON_YEARS = 10  # the sparsest satisfiable cron (29 Feb) fires at least every 8 years
_RRULE_HORIZON_YEARS = 30  # an RRULE silent this long is finished (29 Feb on a Monday: 28)...
_SUBDAILY_HORIZON_YEARS = 8  # ...or this long for HOURLY/MINUTELY, whose skipped days cost more
_MAX_COUNT = 1000  # COUNT is resolved once by iterating from DTSTART: keep that bounded
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-/]{1,64}")
# Files of the zone database that load as zones but name no place: "Factory" (no time of its
# own), "posixrules" (a template for POSIX TZ strings), "localtime" (the host's own zone, where
# a distribution links it into the database).
_NOT_PLACES = frozenset({"Factory", "posixrules", "localtime"})
_TOPIC = re.compile(r"[A-Za-z0-9._:*-]{1,200}")


def _invalid(field_name: str, message: str) -> InvalidSchedule:
    return InvalidSchedule(message, [{"field": field_name, "message": message}])


def _bad(message: str) -> InvalidSchedule:
    return _invalid("schedule_expr", message)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


@functools.cache
def zone_names() -> frozenset[str]:
    """Every accepted ``timezone``: the IANA zones and their links (``US/Eastern``), as listed
    by the ``tzdata`` package (a dependency), so the same names everywhere; read once per
    process (under a millisecond, where ``available_timezones()`` opens every file: ~50 ms)."""
    try:
        listed = resources.files("tzdata").joinpath("zones").read_text("utf-8").split()
    except (ModuleNotFoundError, OSError):  # no tzdata package: the system's database
        listed = list(available_timezones())
    return frozenset(listed) - _NOT_PLACES


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not _ZONE_NAME.fullmatch(name):
        raise _invalid("timezone", "timezone must be an IANA zone name such as 'Europe/Chisinau'")
    if name not in zone_names():  # no paths, no files that are not places, exact case
        raise _invalid("timezone", f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _invalid("timezone", f"unknown time zone {name!r}") from None


# --- wall times -> instants -------------------------------------------------------------------


def _instants(zone: ZoneInfo, wall: datetime, both_folds: bool) -> tuple[datetime, ...]:
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if not both_folds:
        return (first,)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    # In a gap `second < first`: fold=0 applied the pre-gap offset, i.e. shifted forward.
    return (first, second) if second > first else (first,)


_NO_SPREAD = timedelta()


def _offset_spread(zone: ZoneInfo, at: datetime) -> timedelta:
    """How far wall-time order and instant order can disagree near `at` (0 between transitions)."""
    before = (at - _OFFSET_PROBE).astimezone(zone).utcoffset() or _NO_SPREAD
    middle = at.astimezone(zone).utcoffset() or _NO_SPREAD
    after = (at + _OFFSET_PROBE).astimezone(zone).utcoffset() or _NO_SPREAD
    if before == middle == after:  # the usual case: no transition within the probes
        return _NO_SPREAD
    return max(before, middle, after) - min(before, middle, after)


def _stream(
    zone: ZoneInfo,
    walls_from: Callable[[datetime], Iterator[datetime]],
    both_folds: bool,
    after: datetime,
) -> Iterator[datetime]:
    """Fire instants strictly after `after`, strictly increasing, from increasing wall times."""
    start = after.astimezone(zone).replace(tzinfo=None, fold=0) - _offset_spread(zone, after)
    last = after
    pending: list[tuple[datetime, datetime]] = []  # heap of (instant, wall after which it is final)
    for wall in walls_from(start):
        while pending and pending[0][1] < wall:
            instant = heapq.heappop(pending)[0]
            if instant > last:
                last = instant
                yield instant
        for instant in _instants(zone, wall, both_folds):
            if instant > last:
                heapq.heappush(pending, (instant, wall + _offset_spread(zone, instant)))
        # What is final already (no spread: every later wall time maps to a later instant)
        # goes out now, in the order the next wall time would release it, without reading
        # that wall time first: next_after() costs one wall time, not two.
        while pending and pending[0][1] <= wall:
            instant = heapq.heappop(pending)[0]
            if instant > last:
                last = instant
                yield instant
    for instant, _ in sorted(pending):
        if instant > last:
            last = instant
            yield instant


class _Plan(Protocol):
    def stream(self, after: datetime) -> Iterator[datetime]: ...


# --- cron -------------------------------------------------------------------------------------

# fmt: off
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}
_MONTHS = {n: i for i, n in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {n: i for i, n in enumerate("SUN MON TUE WED THU FRI SAT".split())}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day-of-week", 0, 7, _DAYS))
_CRON_ITEM = re.compile(r"(?:\*|([0-9]{1,2}|[A-Z]{3})(?:-([0-9]{1,2}|[A-Z]{3}))?)(?:/([0-9]{1,2}))?")
# fmt: on
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class _Cron:
    zone: ZoneInfo
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # cron numbering: 0 = Sunday
    days_star: bool  # as in Vixie cron, a field "is *" when its text starts with '*' (so */2)
    weekdays_star: bool
    hours_star: bool

    def _day_matches(self, day: date) -> bool:
        in_month = day.day in self.days
        in_week = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_star or self.weekdays_star:
            return in_month and in_week
        return in_month or in_week  # both restricted: either one suffices (Vixie)

    def first_wall(self, start: datetime) -> datetime | None:
        """Earliest matching wall minute >= start; skips by month, day, hour, then minute."""
        if start.second or start.microsecond:
            start = start.replace(second=0, microsecond=0) + _MINUTE
        day, hour, minute = start.date(), start.hour, start.minute
        while day.year <= min(start.year + _CRON_HORIZON_YEARS, 9998):
            if day.month not in self.months:
                later = [m for m in self.months if m > day.month]
                day = date(day.year + (not later), (later or self.months)[0], 1)
                hour = minute = 0
                continue
            if self._day_matches(day):
                for h in self.hours[bisect_left(self.hours, hour) :]:
                    i = bisect_left(self.minutes, minute if h == hour else 0)
                    if i < len(self.minutes):
                        return datetime.combine(day, time(h, self.minutes[i]))
            day += timedelta(days=1)
            hour = minute = 0
        return None

    def walls_from(self, start: datetime) -> Iterator[datetime]:
        wall = self.first_wall(start)
        while wall is not None:
            yield wall
            wall = self.first_wall(wall + _MINUTE)

    def stream(self, after: datetime) -> Iterator[datetime]:
        return _stream(self.zone, self.walls_from, self.hours_star, after)

    @functools.cached_property
    def min_daily_gap_s(self) -> int | None:
        """Smallest gap between two fires within a day: exact, as every matching day is alike.
        Kept with the (cached) parse: every write of a task with this cron asks again."""
        grid = sorted(h * 60 + m for h in self.hours for m in self.minutes)
        return min((b - a) * 60 for a, b in zip(grid, grid[1:], strict=False)) if grid[1:] else None


def _cron_values(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        match = _CRON_ITEM.fullmatch(item)
        if match is None:
            raise _bad(f"cron {name} field: cannot read {item!r}")
        first, last, step = match.groups()
        try:
            a = lo if first is None else int(first) if first.isdigit() else names[first]
            if last is not None:
                b = int(last) if last.isdigit() else names[last]
            else:  # "*" and "*/n" span the field; "a/n" runs from a to its end
                b = hi if first is None or step else a
        except KeyError:
            raise _bad(f"cron {name} field: unknown name in {item!r}") from None
        if not lo <= a <= b <= hi:
            raise _bad(f"cron {name} field: {item!r} is not a range within {lo}-{hi}")
        if step is not None and not 1 <= int(step) <= hi - lo + 1:
            raise _bad(f"cron {name} field: step in {item!r} is out of range")
        values.update(range(a, b + 1, int(step or 1)))
    return values


@functools.lru_cache(maxsize=1024)
def _parse_cron(text: str, zone: ZoneInfo) -> tuple[str, _Cron]:
    # Cached (both values are immutable): a create parses its text to normalize it and the
    # Schedule compiles the normalized text, and tasks share a few common crons.
    normalized = " ".join(text.split()).upper()
    if normalized.startswith("@"):
        normalized = normalized.lower()
        if normalized not in _MACROS:
            raise _bad(f"cron macro {text!r} is not supported (use {', '.join(_MACROS)})")
    fields = _MACROS.get(normalized, normalized).split()
    if len(fields) != 5:
        raise _bad(
            f"cron needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)};"
            " seconds and years are not supported"
        )
    sets = [_cron_values(f, *spec) for f, spec in zip(fields, _CRON_FIELDS, strict=True)]
    cron = _Cron(
        zone=zone,
        minutes=tuple(sorted(sets[0])),
        hours=tuple(sorted(sets[1])),
        days=frozenset(sets[2]),
        months=tuple(sorted(sets[3])),
        weekdays=frozenset(0 if d == 7 else d for d in sets[4]),
        days_star=fields[2].startswith("*"),
        weekdays_star=fields[4].startswith("*"),
        hours_star=fields[1].startswith("*"),
    )
    # Only day-of-month on its own can be unsatisfiable: every month holds every weekday.
    if (
        not cron.days_star
        and cron.weekdays_star
        and not any(d <= _MONTH_DAYS[m] for m in cron.months for d in cron.days)
    ):
        raise _bad(f"cron {text!r} can never fire: no month has that day")
    return normalized, cron


# --- rrule ------------------------------------------------------------------------------------

_Freq = Literal[0, 1, 2, 3, 4, 5]  # dateutil's YEARLY .. MINUTELY
_WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# fmt: off
_FREQS: dict[str, _Freq] = {"YEARLY": du.YEARLY, "MONTHLY": du.MONTHLY, "WEEKLY": du.WEEKLY,
                            "DAILY": du.DAILY, "HOURLY": du.HOURLY, "MINUTELY": du.MINUTELY}
_INT_PARTS = {  # RFC 5545 part: (lowest, highest); 0 is invalid when lowest < 0
    "INTERVAL": (1, 10_000), "COUNT": (1, _MAX_COUNT), "BYSECOND": (0, 59), "BYMINUTE": (0, 59),
    "BYHOUR": (0, 23), "BYMONTHDAY": (-31, 31), "BYYEARDAY": (-366, 366), "BYWEEKNO": (-53, 53),
    "BYMONTH": (1, 12), "BYSETPOS": (-366, 366)}
_DTSTART = re.compile(r"DTSTART(?:;TZID=([^:;]+))?(?:;VALUE=DATE-TIME)?:([0-9]{8}T[0-9]{6})(Z?)", re.I)
_UNITS = {du.WEEKLY: timedelta(weeks=1), du.DAILY: timedelta(days=1),
          du.HOURLY: timedelta(hours=1), du.MINUTELY: _MINUTE}
# fmt: on
_BYDAY = re.compile(r"([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_UNTIL = re.compile(r"([0-9]{8})(?:T([0-9]{6})(Z?))?")
_INT = re.compile(r"[+-]?[0-9]{1,6}")


@functools.lru_cache(maxsize=512)
def _calendar_shift(first_year: int, cursor_year: int, horizon: int) -> int:
    """Years D such that years first_year-1 .. 10000-D look exactly like first_year-1+D .. 10000.

    dateutil only gives up after year 9999, so a rule that never matches would spin for
    millennia. Iterating a copy moved D years later, where weekdays and leap years are the same,
    makes dateutil stop by itself at real year 9999-D, which is after cursor_year: as close to
    `horizon` years after it as possible, and later only if it must (near 2100).
    """
    cursor_year = max(cursor_year, first_year)  # DTSTART may lie ahead of the cursor
    base, target = max(first_year - 1, 1), cursor_year + horizon

    def same(end: int) -> bool:  # do real years base..end+1 match translated ..10000?
        shift = 9999 - end
        return date(base + shift, 1, 1).weekday() == date(base, 1, 1).weekday() and all(
            calendar.isleap(y) == calendar.isleap(y + shift) for y in range(base, end + 2)
        )

    ends = [*range(target, cursor_year, -1), *range(target + 1, target + 401)]
    return next((9999 - end for end in ends if end <= 9999 and same(end)), 0)


@dataclass(frozen=True)
class _RRule:
    zone: ZoneInfo
    freq: _Freq
    anchor: datetime  # naive wall DTSTART
    kwargs: dict[str, Any]  # dateutil arguments, with the dtstart-derived defaults made explicit
    until: datetime | None  # naive wall, inclusive; COUNT is resolved into one

    def _period_start(self, cursor: datetime) -> datetime:
        """Latest period start of the rule (DTSTART + k*INTERVAL units) at or before cursor."""
        a, i = self.anchor, self.kwargs["interval"]
        if self.freq == du.YEARLY:
            k = (cursor.year - a.year) // i
            start = datetime(a.year + k * i, 1, 1)
        elif self.freq == du.MONTHLY:
            k = ((cursor.year - a.year) * 12 + cursor.month - a.month) // i
            month = a.month - 1 + k * i
            start = datetime(a.year + month // 12, month % 12 + 1, 1)
        else:
            unit = _UNITS[self.freq]
            floor = min(unit, _UNITS[du.DAILY])
            first = datetime.min + (a - datetime.min) // floor * floor
            if self.freq == du.WEEKLY:  # weeks begin on WKST
                first -= timedelta((a.weekday() - self.kwargs["wkst"]) % 7)
            k = (cursor - first) // (unit * i)
            start = first + unit * i * k
        return start if k > 0 else a

    def walls_from(self, start: datetime) -> Iterator[datetime]:
        cursor = heard = start
        horizon = self.horizon
        while cursor.year - heard.year <= horizon:  # else silent for too long: finished
            # Starting from a later period yields the same matches (the BYxxx defaults are
            # explicit) and makes the cost independent of how long ago DTSTART was.
            first = self._period_start(cursor)
            shift = _calendar_shift(first.year, cursor.year, horizon)
            produced = iter(
                du.rrule(self.freq, dtstart=first.replace(year=first.year + shift), **self.kwargs)
            )
            resume = datetime(10000 - shift, 1, 1) if shift else None  # where this window ends
            while True:
                try:
                    wall = next(produced)
                except StopIteration:
                    break
                except (ValueError, OverflowError):
                    # A week straddling 9999-12-31 made dateutil build a date past it before
                    # yielding: scan that week again in the next window (still after cursor).
                    resume = resume and resume - timedelta(weeks=1)
                    break
                wall = wall.replace(year=wall.year - shift)
                if wall < cursor:
                    continue
                if self.until is not None and wall > self.until:
                    return
                yield wall
                heard = cursor = wall + _SECOND
            if resume is None:
                return
            cursor = max(cursor, resume)

    def stream(self, after: datetime) -> Iterator[datetime]:
        return _stream(self.zone, self.walls_from, False, after)

    @property
    def horizon(self) -> int:
        return _RRULE_HORIZON_YEARS if self.freq <= du.DAILY else _SUBDAILY_HORIZON_YEARS

    def limited_to(self, count: int) -> _RRule:
        """The rule ending at its `count`-th wall time (COUNT as an inclusive UNTIL).

        Counting walks from DTSTART, so it stops a century later (16 years for HOURLY/MINUTELY,
        whose skipped days cost more): occurrences past that are dropped. Otherwise COUNT=1000
        of a leap-day rule would walk four millennia.
        """
        span = 100 if self.freq <= du.DAILY else 2 * self.horizon
        last, stop = self.anchor - _SECOND, datetime(self.anchor.year + span, 1, 1)
        for n, wall in enumerate(replace(self, until=stop).walls_from(self.anchor), start=1):
            last = wall
            if n == count:
                break
        return replace(self, until=last)


def _int_in(value: str, name: str) -> int:
    lo, hi = _INT_PARTS[name]
    if not _INT.fullmatch(value) or not lo <= int(value) <= hi or (lo < 0 and int(value) == 0):
        raise _bad(f"rrule: {name}={value} is outside {lo}..{hi}" + (" (not 0)" if lo < 0 else ""))
    return int(value)


def _byday(value: str, freq: _Freq) -> list[du.weekday]:
    days = []
    for item in value.split(","):
        match = _BYDAY.fullmatch(item)
        n = int(match[1]) if match and match[1] else None
        # RFC 5545: an ordinal (2MO, -1FR) only has a meaning within a month or a year.
        if match is None or (n is not None and (freq > du.MONTHLY or not 1 <= abs(n) <= 53)):
            raise _bad(f"rrule: bad BYDAY={value} (ordinals like 2MO need MONTHLY or YEARLY)")
        day = du.weekdays[_WEEKDAY_CODES.index(match[2])]
        days.append(day if n is None else day(n))
    return days


def _stamp(text: str, zone: ZoneInfo, utc: bool) -> datetime:
    """A naive wall time in `zone` from an RFC 5545 DATE-TIME (UTC if it ended in Z)."""
    try:
        wall = datetime.strptime(text, "%Y%m%dT%H%M%S")
    except ValueError:
        raise _bad(f"rrule: date-time {text!r} is not valid") from None
    if not 1900 <= wall.year <= 9000:
        raise _bad(f"rrule: date-time {text!r} is outside the years 1900-9000")
    return wall.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None) if utc else wall


def _split_rrule(text: str) -> tuple[str | None, str]:
    """(the DTSTART token or None, the RRULE body without its ``RRULE:``)."""
    dtstart = body = None
    for token in text.split():
        upper = token.upper()
        if upper.startswith("DTSTART") and dtstart is None:
            dtstart = token
        elif (upper.startswith("RRULE:") or ":" not in upper) and body is None:
            body = upper.removeprefix("RRULE:")
        else:
            raise _bad(f"rrule: unexpected {token[:40]!r}; give an optional DTSTART and one RRULE")
    if not body:
        raise _bad("rrule: the RRULE is missing (e.g. FREQ=DAILY;BYHOUR=9)")
    return dtstart, body


def _anchor(
    dtstart: str | None, tzname: str, zone: ZoneInfo, fallback: datetime | None
) -> datetime:
    """The rule's first wall time in ``zone`` (naive): DTSTART's, else ``fallback``'s."""
    if dtstart is not None:
        if (match := _DTSTART.fullmatch(dtstart)) is None:
            raise _bad("rrule: write DTSTART;TZID=Zone:YYYYMMDDTHHMMSS or DTSTART:YYYYMMDDTHHMMSSZ")
        tzid, stamp, z = match.groups()
        if tzid is not None and (z or tzid != tzname):
            raise _invalid("timezone", f"DTSTART;TZID={tzid} differs from timezone {tzname}")
        return _stamp(stamp, zone, bool(z))
    if fallback is not None:
        return fallback.astimezone(zone).replace(tzinfo=None, microsecond=0, fold=0)
    raise _bad("rrule: DTSTART is missing")


def _rule_parts(body: str) -> tuple[str, _Freq, dict[str, str]]:
    """(FREQ's name, FREQ, the other parts by name) of an RRULE body."""
    parts = dict(item.partition("=")[::2] for item in body.split(";"))
    if len(parts) != body.count(";") + 1 or not all(parts.values()):
        raise _bad(f"rrule: malformed or repeated rule part in {body[:60]!r}")
    freq_name = parts.pop("FREQ", "")
    if (freq := _FREQS.get(freq_name)) is None:
        raise _bad(f"rrule: FREQ must be one of {', '.join(_FREQS)} (not SECONDLY)")
    return freq_name, freq, parts


def _rule_kwargs(
    parts: dict[str, str], freq: _Freq, zone: ZoneInfo
) -> tuple[dict[str, Any], int | None, datetime | None]:
    """(dateutil rrule arguments, COUNT, UNTIL as a naive wall time) of the parts but FREQ."""
    kwargs: dict[str, Any] = {"interval": 1, "wkst": 0}  # RFC WKST default; dateutil's is global
    count = until = None
    for name, value in parts.items():
        if name == "COUNT":
            count = _int_in(value, name)
        elif name == "INTERVAL":
            kwargs["interval"] = _int_in(value, name)
        elif name == "UNTIL" and (m := _UNTIL.fullmatch(value)):
            until = _stamp(f"{m[1]}T{m[2] or '235959'}", zone, bool(m[3]))
        elif name == "WKST" and value in _WEEKDAY_CODES:
            kwargs["wkst"] = _WEEKDAY_CODES.index(value)
        elif name == "BYDAY":
            kwargs["byweekday"] = _byday(value, freq)
        elif name in _INT_PARTS:
            kwargs[name.lower()] = [_int_in(v, name) for v in value.split(",")]
        else:
            raise _bad(f"rrule: unsupported or malformed part {name}={value[:40]}")
    return kwargs, count, until


def _check_rule(
    kwargs: dict[str, Any],
    freq: _Freq,
    count: int | None,
    until: datetime | None,
    anchor: datetime,
) -> None:
    """Refuse what RFC 5545 forbids and what would make dateutil walk for ever."""
    if count is not None and until is not None:
        raise _bad("rrule: COUNT and UNTIL cannot both be given")
    # dateutil walks every hour or minute when BYSETPOS matches nothing (no day-level skip),
    # and indexes past its masks for ordinals beyond the 5th weekday of a month.
    if "bysetpos" in kwargs and freq > du.DAILY:
        raise _bad("rrule: BYSETPOS needs FREQ=DAILY or coarser")
    in_month = freq == du.MONTHLY or "bymonth" in kwargs
    if any(abs(d.n or 0) > 5 for d in kwargs.get("byweekday", ()) if in_month):
        raise _bad("rrule: a BYDAY ordinal within a month must be within -5..5")
    if until is not None and until < anchor:
        raise _bad("rrule: UNTIL is before DTSTART, so it never fires")
    if len(set(kwargs.get("bysecond", ()))) > 1:  # two seconds of a minute: under a minute apart
        raise _bad("rrule: BYSECOND takes one value: fires are at least a minute apart")


def _pin_to_anchor(kwargs: dict[str, Any], freq: _Freq, anchor: datetime) -> None:
    """dateutil derives missing BYxxx from dtstart; pin them to the anchor so rebasing keeps
    them."""
    if freq <= du.DAILY:
        kwargs.setdefault("byhour", [anchor.hour])
    if freq <= du.HOURLY:
        kwargs.setdefault("byminute", [anchor.minute])
    kwargs.setdefault("bysecond", [anchor.second])
    if not {"byweekno", "byyearday", "bymonthday", "byweekday"} & kwargs.keys():
        if freq == du.YEARLY:
            kwargs.setdefault("bymonth", [anchor.month])
        if freq in (du.YEARLY, du.MONTHLY):
            kwargs["bymonthday"] = [anchor.day]
        elif freq == du.WEEKLY:
            kwargs["byweekday"] = [anchor.weekday()]


def _as_daily(kwargs: dict[str, Any], freq: _Freq, anchor: datetime) -> _Freq:
    """The frequency to iterate at: HOURLY and MINUTELY said as DAILY where the wall times are
    the same (``kwargs`` rewritten to match).

    On every day its filters skip, dateutil rebuilds HOURLY times and walks MINUTELY towards
    BYHOUR a minute at a time; said as DAILY a skipped day costs one check.
    """
    step = kwargs["interval"]
    if freq == du.HOURLY and 24 % step == 0:
        kwargs["byhour"] = [
            h for h in kwargs.get("byhour", range(24)) if (h - anchor.hour) % step == 0
        ]
        kwargs["interval"] = 1
        return du.DAILY
    if freq == du.MINUTELY and "byhour" in kwargs:
        if 60 % step:
            raise _bad("rrule: FREQ=MINUTELY with BYHOUR needs an INTERVAL that divides 60")
        minutes = kwargs.get("byminute", range(60))
        kwargs["byminute"] = [m for m in minutes if (m - anchor.minute) % step == 0]
        kwargs["interval"] = 1
        return du.DAILY
    if freq == du.HOURLY and len(kwargs["byminute"]) > 10:  # the rest rebuild per skipped day
        raise _bad("rrule: FREQ=HOURLY with an INTERVAL not dividing 24 takes at most 10 BYMINUTE")
    return freq


def _parse_rrule(
    text: str, tzname: str, zone: ZoneInfo, fallback: datetime | None
) -> tuple[str, datetime, _RRule, int | None]:
    """(normalized text, anchor instant, rule without COUNT, COUNT) from DTSTART + RRULE text."""
    dtstart, body = _split_rrule(text)
    anchor = _anchor(dtstart, tzname, zone, fallback)
    freq_name, freq, parts = _rule_parts(body)
    kwargs, count, until = _rule_kwargs(parts, freq, zone)
    _check_rule(kwargs, freq, count, until, anchor)
    _pin_to_anchor(kwargs, freq, anchor)
    freq = _as_daily(kwargs, freq, anchor)
    try:
        du.rrule(freq, dtstart=anchor, **kwargs)
    except (ValueError, TypeError) as exc:
        raise _bad(f"rrule: {exc}") from None

    rule = ";".join(f"{k}={v}" for k, v in {"FREQ": freq_name, **parts}.items())
    normalized = f"DTSTART;TZID={tzname}:{anchor:%Y%m%dT%H%M%S}\nRRULE:{rule}"
    instant = anchor.replace(tzinfo=zone).astimezone(UTC)
    return normalized, instant, _RRule(zone, freq, anchor, kwargs, until), count


# --- once, event ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Once:
    instant: datetime | None  # None: an event trigger, which has no time of its own

    def stream(self, after: datetime) -> Iterator[datetime]:
        return iter((self.instant,) if self.instant and self.instant > after else ())


def _parse_once(text: str, zone: ZoneInfo) -> datetime:
    try:
        value = datetime.fromisoformat(text)
        # Naive means wall time in the task's zone; fold=0 applies the DST rules above.
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad(
            f"once needs an ISO 8601 time like 2026-03-08T09:00:00, not {text[:40]!r}"
        ) from None


def _parse_topic(text: str) -> str:
    if not _TOPIC.fullmatch(text):
        raise _bad("event topic must be 1-200 characters of A-Z a-z 0-9 . _ : * -")
    return text


# --- public API -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _compile(kind: str, expr: str, timezone: str, dtstart: datetime | None) -> _Plan:
    # Cached: the scheduler rebuilds Schedules from rows every tick, and COUNT costs O(COUNT).
    if kind not in SCHEDULE_KINDS:
        raise _invalid("schedule_kind", f"schedule_kind must be one of {', '.join(SCHEDULE_KINDS)}")
    zone = _zone(timezone)
    if kind in ("cron", "condition"):
        return _parse_cron(expr, zone)[1]
    if kind == "rrule":
        _, _, rule, count = _parse_rrule(expr, timezone, zone, dtstart)
        return rule if count is None else rule.limited_to(count)
    if kind == "once":
        return _Once(_parse_once(expr, zone))
    _parse_topic(expr)
    return _Once(None)


@dataclass(frozen=True)
class Schedule:
    """A validated trigger. Build it with :func:`parse_schedule`, or from persisted fields."""

    kind: str
    expr: str  # normalized: parsing it again gives an equal Schedule
    timezone: str  # IANA name
    dtstart: datetime | None = None  # aware UTC; the persisted anchor for rrule, else None

    def __post_init__(self) -> None:
        _ = self._plan  # validate now: a bad persisted row fails where it is loaded

    @functools.cached_property
    def _plan(self) -> _Plan:
        # Not a field, so eq/hash/asdict/repr see only the four persisted values.
        return _compile(self.kind, self.expr, self.timezone, self.dtstart)

    def next_after(self, after: datetime) -> datetime | None:
        """First fire instant strictly after `after`, aware UTC; None if exhausted or event-driven."""
        _require_aware(after, "after")
        return _first_after(self._plan, after.astimezone(UTC))

    def fire_times(self, start: datetime, until: datetime | None, limit: int) -> list[datetime]:
        """At most `limit` fire instants in (start, until), strictly increasing, aware UTC."""
        _require_aware(start, "start")
        out: list[datetime] = []
        for instant in self._plan.stream(start.astimezone(UTC)) if limit > 0 else ():
            if until is not None and instant >= until:
                break
            out.append(instant)
            if len(out) == limit:
                break
        return out


_Known = tuple[datetime, datetime | None]  # (after, the first fire after it)


def _first_after(plan: _Plan, after: datetime) -> datetime | None:
    """``next(plan.stream(after), None)``, remembered per plan for the last ``after`` asked.

    Nothing fires in (after, first), so every instant from ``after`` up to ``first`` has the
    same answer. Plans are cached per schedule (``_compile``): a task write checks its
    schedule's first fire and then asks for it again, the writes of tasks sharing a schedule
    ask about instants moments apart, and so does the scheduler's tick; until that fire
    passes they are answered without walking wall times again. One pair per plan (bounded
    with the plans), replaced by the next question it cannot answer."""
    known: _Known | None = vars(plan).get("_first_after")
    if known is not None and known[0] <= after and (known[1] is None or after < known[1]):
        return known[1]
    first = next(plan.stream(after), None)
    _remember_first(plan, after, first)
    return first


def _remember_first(plan: _Plan, after: datetime, first: datetime | None) -> None:
    # Not a field of the frozen plan: its eq, hash and repr never see it. One tuple,
    # replaced whole, so a reader sees an old pair or a new one, each true.
    vars(plan)["_first_after"] = (after, first)


def _check_fires(schedule: Schedule, now: datetime, min_interval_s: int) -> None:
    plan = schedule._plan
    gap = plan.min_daily_gap_s if isinstance(plan, _Cron) else None
    if gap is not None and gap < min_interval_s:
        raise _bad(
            f"cron fires {gap} s apart; the minimum interval is {min_interval_s} s "
            "(ORDINAUT_MIN_INTERVAL_S)"
        )
    # The scheduler ticks once a minute: hold RRULE (which can name seconds) to that at least.
    floor = max(min_interval_s, 60) if schedule.kind == "rrule" else min_interval_s
    start = now - _PAST_GRACE
    if isinstance(plan, _Cron):
        # The grid gap above is exact away from DST; only offset changes can bring two cron
        # fires closer, so look at a couple of days around each one in the sample span
        # instead of walking hundreds of fires (this runs on every task write).
        if _first_after(plan, start) is None:
            raise _bad(f"{schedule.kind} schedule never fires after now")
        day, days = _span_days(start, start + _CHECK_SPAN)
        problem = _cron_change_gaps(schedule.expr, schedule.timezone, day, days, floor)
        if problem is not None:
            raise _bad(problem)
        return
    first = _check_gaps(plan.stream(start), floor, _CHECK_FIRES, None)
    _remember_first(plan, start, first)
    if first is None:
        raise _bad(f"{schedule.kind} schedule never fires after now")


_AROUND_CHANGE = timedelta(days=2)


@functools.lru_cache(maxsize=4096)
def _cron_change_gaps(
    expr: str, timezone: str, day: datetime, days: int, floor: float
) -> str | None:
    """Why a cron's fires come too close around the offset changes of ``days`` days from
    ``day`` (None: they do not). Cached: the answer depends on nothing else, and every write of
    a task with this cron and zone asks the same question all day (it cost a third of a create
    on the event loop, walking fires around each change)."""
    zone = _zone(timezone)
    plan = _parse_cron(expr, zone)[1]
    try:
        for change in _offset_changes_walk(zone, day, days):
            _check_gaps(plan.stream(change - _AROUND_CHANGE), floor, 1_000, change + _AROUND_CHANGE)
    except InvalidSchedule as exc:
        return exc.message
    return None


def _check_gaps(
    instants: Iterator[datetime], floor: float, max_fires: int, until: datetime | None
) -> datetime | None:
    """Raise when two consecutive fires are closer than ``floor`` s; returns the first fire."""
    first = previous = None
    for n, instant in enumerate(instants):
        first = first or instant
        if n > max_fires or instant - first > _CHECK_SPAN or (until and instant > until):
            break
        if previous is not None and (instant - previous).total_seconds() < floor:
            raise _bad(
                f"schedule fires at {previous.isoformat()} and {instant.isoformat()}, closer"
                f" than the minimum interval of {floor} s (ORDINAUT_MIN_INTERVAL_S; an RRULE"
                " fires at most once a minute)"
            )
        previous = instant
    return first


def _span_days(start: datetime, end: datetime) -> tuple[datetime, int]:
    """The UTC midnight before ``start`` and how many whole days from it reach ``end``."""
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day, -((day - end) // timedelta(days=1))


@functools.lru_cache(maxsize=1024)
def _offset_changes_walk(zone: ZoneInfo, start: datetime, days: int) -> tuple[datetime, ...]:
    """Instants (to the hour) where ``zone``'s UTC offset changes in the ``days`` days from
    ``start`` (a UTC midnight, ``_span_days``: up to a day early, which can only add a change
    to look around, never miss one). Cached per (zone, day, days): every task write in a zone
    checks the same two years, so the day-by-day walk runs once a day per zone."""
    changes: list[datetime] = []
    step = timedelta(days=1)
    t = start
    before = t.astimezone(zone).utcoffset()
    for _ in range(days):
        nxt = t + step
        after = nxt.astimezone(zone).utcoffset()
        if after != before:
            lo, hi = t, nxt  # bisect to the hour: enough to centre the window on it
            while hi - lo > timedelta(hours=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == before:
                    lo = mid
                else:
                    hi = mid
            changes.append(hi)
            before = after
        t = nxt
    return tuple(changes)


def parse_schedule(
    kind: str,
    expr: str,
    timezone: str = "UTC",
    *,
    now: datetime,
    dtstart: datetime | None = None,
    min_interval_s: int = 60,
    max_expr_length: int = 1000,
) -> Schedule:
    """Validate input into a Schedule that fires after `now` within limits, else InvalidSchedule."""
    _require_aware(now, "now")
    if dtstart is not None:
        _require_aware(dtstart, "dtstart")
    if not isinstance(kind, str) or kind not in SCHEDULE_KINDS:
        raise _invalid("schedule_kind", f"schedule_kind must be one of {', '.join(SCHEDULE_KINDS)}")
    if not isinstance(expr, str) or not expr.strip():
        raise _bad("schedule_expr must be a non-empty string")
    if len(expr) > max_expr_length:
        raise _bad(f"schedule_expr is longer than {max_expr_length} characters")
    zone = _zone(timezone)
    text, anchor = expr.strip(), None
    if kind in ("cron", "condition"):
        text = _parse_cron(text, zone)[0]
    elif kind == "rrule":
        # A DTSTART in the text wins, kept exactly; else the persisted anchor; else the minute
        # of now: BYSECOND defaults to DTSTART's second, so the request's second would become
        # every fire's (07:00:03 for BYHOUR=7;BYMINUTE=0).
        minute = now.replace(second=0, microsecond=0)
        text, anchor, _, _ = _parse_rrule(text, timezone, zone, dtstart or minute)
    elif kind == "once":
        instant = _parse_once(text, zone)
        if instant < now - _PAST_GRACE:
            raise _bad(f"once at {instant.isoformat()} is in the past")
        text = instant.isoformat()
    else:
        text = _parse_topic(text)
    schedule = Schedule(kind, text, timezone, anchor)
    if kind != "event":
        _check_fires(schedule, now, min_interval_s)
    return schedule


def describe(schedule: Schedule) -> str:
    """Short human text for a schedule, e.g. "cron '0 8 * * 1-5' in Europe/Chisinau"."""
    if schedule.kind == "event":
        return f"on events matching '{schedule.expr}'"
    if schedule.kind == "once":
        local = datetime.fromisoformat(schedule.expr).astimezone(ZoneInfo(schedule.timezone))
        return f"once at {local.isoformat()} in {schedule.timezone}"
    if schedule.kind == "rrule":
        start, _, rule = schedule.expr.partition(":")[2].partition("\nRRULE:")
        return f"rrule '{rule}' from {start} in {schedule.timezone}"
    label = "polled on cron" if schedule.kind == "condition" else "cron"
    return f"{label} '{schedule.expr}' in {schedule.timezone}"
