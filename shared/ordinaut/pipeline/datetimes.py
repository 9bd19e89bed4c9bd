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
from ordinaut.pipeline.functions import BoundedFunctions, ExpressionError, signature
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

    @signature(_ANY, _NUM)
    def _func_add_seconds(self, ts: Any, n: Any) -> str:
        return _shift(ts, _number(n, "add_seconds"), "add_seconds")

    @signature(_ANY, _NUM)
    def _func_add_minutes(self, ts: Any, n: Any) -> str:
        return _shift(ts, _number(n, "add_minutes") * 60, "add_minutes")

    @signature(_ANY, _NUM)
    def _func_add_hours(self, ts: Any, n: Any) -> str:
        return _shift(ts, _number(n, "add_hours") * 3600, "add_hours")

    @signature(_ANY, _NUM)
    def _func_add_days(self, ts: Any, n: Any) -> str:
        return _shift(ts, _number(n, "add_days") * 86400, "add_days")

    @signature(_ANY, _STR)
    def _func_add_duration(self, ts: Any, spec: str) -> str:
        return _shift(ts, duration_seconds(spec), "add_duration")

    @signature(_ANY, _ANY)
    def _func_diff_seconds(self, a: Any, b: Any) -> float:
        delta = parse_instant(a, "diff_seconds") - parse_instant(b, "diff_seconds")
        seconds = delta.total_seconds()
        return int(seconds) if seconds.is_integer() else seconds

    @signature(_ANY, _STR, _STR)
    def _func_format_time(self, ts: Any, zone: str, fmt: str) -> str:
        local = parse_instant(ts, "format_time").astimezone(_zone(zone, "format_time"))
        return self._bounded(local.strftime(fmt), "format_time")

    @signature(_ANY, _STR)
    def _func_to_zone(self, ts: Any, zone: str) -> str:
        return parse_instant(ts, "to_zone").astimezone(_zone(zone, "to_zone")).isoformat()

    @signature(_ANY)
    def _func_parse_time(self, ts: Any) -> str:
        return iso_utc(parse_instant(ts, "parse_time"))

    @signature(_ANY)
    def _func_to_epoch(self, ts: Any) -> float:
        seconds = parse_instant(ts, "to_epoch").timestamp()
        return int(seconds) if seconds.is_integer() else seconds

    @signature(_ANY, _STR)
    def _func_start_of_day(self, ts: Any, zone: str) -> str:
        local = parse_instant(ts, "start_of_day").astimezone(_zone(zone, "start_of_day"))
        midnight = datetime(local.year, local.month, local.day, tzinfo=local.tzinfo)
        return iso_utc(midnight)

    @signature(_ANY, _STR)
    def _func_weekday(self, ts: Any, zone: str) -> int:
        return parse_instant(ts, "weekday").astimezone(_zone(zone, "weekday")).isoweekday()
