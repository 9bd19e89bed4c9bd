"""Date arithmetic and formatting for expressions: ``add_duration(now, '24h')``,
``format_time(now, 'Europe/Chisinau', '%H:%M')`` and friends.

Times are ISO 8601 strings (naive ones are read as UTC) or epoch seconds; results are ISO
8601 in UTC with a ``Z`` unless a zone is asked for. Arithmetic is on absolute time:
``add_days(t, 1)`` is 86400 seconds later, whatever the wall clock does.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ordinaut.pipeline.context import iso_utc
from ordinaut.pipeline.functions import BoundedFunctions, ExpressionError, documented, signature
from ordinaut.schedules import zone_names

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_NUM: Any = {"types": ["number", "string"]}
_STR: Any = {"types": ["string"]}
_ANY: Any = {"types": []}


def parse_instant(value: Any, fn: str = "time") -> datetime:
    """An aware datetime from an ISO 8601 string (naive means UTC) or epoch seconds."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise ExpressionError(f"{fn}(): {value!r} is not an ISO 8601 time")


def _zone(name: Any, fn: str) -> ZoneInfo:
    # The zones a task's timezone may name (IANA zones and links; no Factory, no paths).
    if not isinstance(name, str) or name not in zone_names():
        raise ExpressionError(f"{fn}(): unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise ExpressionError(f"{fn}(): unknown time zone {name!r}") from None


def _number(value: Any, fn: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ExpressionError(f"{fn}(): {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ExpressionError(f"{fn}(): {value!r} is not a finite number")
    return number


def _shift(ts: Any, seconds: float, fn: str) -> str:
    try:
        return iso_utc(parse_instant(ts, fn) + timedelta(seconds=seconds))
    except OverflowError:
        raise ExpressionError(f"{fn}(): result is out of range") from None


def duration_seconds(spec: str) -> float:
    """Seconds in a compact duration such as ``90s``, ``15m``, ``1h30m``, ``-2d`` or ``1w``."""
    text = spec.strip().lower()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if not body or _DURATION.sub("", body):
        raise ExpressionError(f"add_duration(): {spec!r} is not a duration like '1h30m'")
    return sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(body))


class TimeFunctions(BoundedFunctions):
    """Functions over instants and zones."""

    @documented(
        "add_seconds(time: any, seconds: number|string) -> string",
        "The time (an ISO 8601 string, naive read as UTC, or epoch seconds) plus `seconds`, as ISO 8601 in UTC.",
        "add_seconds('2026-03-01T08:00:00Z', `90`)",
        "2026-03-01T08:01:30Z",
    )
    @signature(_ANY, _NUM)
    def _func_add_seconds(self, ts: Any, n: Any) -> str:
        return _shift(ts, _number(n, "add_seconds"), "add_seconds")

    @documented(
        "add_minutes(time: any, minutes: number|string) -> string",
        "The time plus `minutes` (negative goes back), as ISO 8601 in UTC.",
        "add_minutes('2026-03-01T08:00:00Z', `-15`)",
        "2026-03-01T07:45:00Z",
    )
    @signature(_ANY, _NUM)
    def _func_add_minutes(self, ts: Any, n: Any) -> str:
        return _shift(ts, _number(n, "add_minutes") * 60, "add_minutes")

    @documented(
        "add_hours(time: any, hours: number|string) -> string",
        "The time plus `hours`, as ISO 8601 in UTC.",
        "add_hours('2026-03-01T08:00:00Z', `2`)",
        "2026-03-01T10:00:00Z",
    )
    @signature(_ANY, _NUM)
    def _func_add_hours(self, ts: Any, n: Any) -> str:
        return _shift(ts, _number(n, "add_hours") * 3600, "add_hours")

    @documented(
        "add_days(time: any, days: number|string) -> string",
        "The time plus `days` of 86400 seconds each (absolute time: a DST change does not shift it), as ISO 8601 in UTC.",
        "add_days('2026-03-01T08:00:00Z', `1`)",
        "2026-03-02T08:00:00Z",
    )
    @signature(_ANY, _NUM)
    def _func_add_days(self, ts: Any, n: Any) -> str:
        return _shift(ts, _number(n, "add_days") * 86400, "add_days")

    @documented(
        "add_duration(time: any, duration: string) -> string",
        "The time plus a compact duration: numbers with units w, d, h, m, s (`90s`, `1h30m`, `-2d`), as ISO 8601 in UTC.",
        "add_duration('2026-03-01T08:00:00Z', '1h30m')",
        "2026-03-01T09:30:00Z",
    )
    @signature(_ANY, _STR)
    def _func_add_duration(self, ts: Any, spec: str) -> str:
        return _shift(ts, duration_seconds(spec), "add_duration")

    @documented(
        "diff_seconds(a: any, b: any) -> number",
        "Seconds from time `b` to time `a` (a - b; negative when a is earlier).",
        "diff_seconds('2026-03-01T09:00:00Z', '2026-03-01T08:00:00Z')",
        3600,
    )
    @signature(_ANY, _ANY)
    def _func_diff_seconds(self, a: Any, b: Any) -> float:
        delta = parse_instant(a, "diff_seconds") - parse_instant(b, "diff_seconds")
        seconds = delta.total_seconds()
        return int(seconds) if seconds.is_integer() else seconds

    @documented(
        "format_time(time: any, zone: string, format: string) -> string",
        "The time in an IANA zone, formatted with strftime codes (`%Y-%m-%d %H:%M`, `%A`...).",
        "format_time('2026-03-01T08:00:00Z', 'Europe/Chisinau', '%H:%M')",
        "10:00",
    )
    @signature(_ANY, _STR, _STR)
    def _func_format_time(self, ts: Any, zone: str, fmt: str) -> str:
        local = parse_instant(ts, "format_time").astimezone(_zone(zone, "format_time"))
        return self._bounded(local.strftime(fmt), "format_time")

    @documented(
        "to_zone(time: any, zone: string) -> string",
        "The time as ISO 8601 with the offset of an IANA zone.",
        "to_zone('2026-03-01T08:00:00Z', 'America/New_York')",
        "2026-03-01T03:00:00-05:00",
    )
    @signature(_ANY, _STR)
    def _func_to_zone(self, ts: Any, zone: str) -> str:
        return parse_instant(ts, "to_zone").astimezone(_zone(zone, "to_zone")).isoformat()

    @documented(
        "parse_time(time: any) -> string",
        "The time (ISO 8601 with any offset, naive read as UTC, or epoch seconds) as ISO 8601 in UTC.",
        "parse_time('2026-03-01T10:00:00+02:00')",
        "2026-03-01T08:00:00Z",
    )
    @signature(_ANY)
    def _func_parse_time(self, ts: Any) -> str:
        return iso_utc(parse_instant(ts, "parse_time"))

    @documented(
        "to_epoch(time: any) -> number",
        "The time as seconds since 1970-01-01T00:00:00Z.",
        "to_epoch('2026-03-01T00:00:00Z')",
        1772323200,
    )
    @signature(_ANY)
    def _func_to_epoch(self, ts: Any) -> float:
        seconds = parse_instant(ts, "to_epoch").timestamp()
        return int(seconds) if seconds.is_integer() else seconds

    @documented(
        "start_of_day(time: any, zone: string) -> string",
        "The instant the time's day began in an IANA zone (local midnight), as ISO 8601 in UTC.",
        "start_of_day('2026-03-01T08:00:00Z', 'Europe/Chisinau')",
        "2026-02-28T22:00:00Z",
    )
    @signature(_ANY, _STR)
    def _func_start_of_day(self, ts: Any, zone: str) -> str:
        local = parse_instant(ts, "start_of_day").astimezone(_zone(zone, "start_of_day"))
        midnight = datetime(local.year, local.month, local.day, tzinfo=local.tzinfo)
        return iso_utc(midnight)

    @documented(
        "weekday(time: any, zone: string) -> number",
        "The ISO weekday of the time in an IANA zone: 1 Monday ... 7 Sunday.",
        "weekday('2026-03-01T08:00:00Z', 'UTC')",
        7,
    )
    @signature(_ANY, _STR)
    def _func_weekday(self, ts: Any, zone: str) -> int:
        return parse_instant(ts, "weekday").astimezone(_zone(zone, "weekday")).isoweekday()
