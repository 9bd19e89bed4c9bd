"""One clock for the whole system.

Every unit of work (a tick, a lease, a request) reads the clock once and passes that instant
into pure code and into SQL as a bound parameter. In production the clock is the database's
(``DatabaseClock``): process clocks that drift cannot cause early runs or false rescues.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current instant, timezone-aware UTC."""
        ...


class FrozenClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    def advance(self, seconds: float = 0.0, **kw: float) -> datetime:
        self._at = self._at + timedelta(seconds=seconds, **kw)
        return self._at


class DatabaseClock:
    """The database server's clock, read cheaply through a measured offset.

    ``sync(db_now, sent_mono, received_mono)`` records the offset between the server's
    ``clock_timestamp()`` and this process's monotonic clock (midpoint of the round trip);
    ``now()`` then costs no I/O. Resync periodically (workers do it with their heartbeat).
    """

    def __init__(self) -> None:
        self._base_db: datetime | None = None
        self._base_mono = 0.0

    @property
    def synced(self) -> bool:
        return self._base_db is not None

    def sync(self, db_now: datetime, sent_mono: float, received_mono: float) -> None:
        self._base_db = db_now.astimezone(UTC)
        self._base_mono = (sent_mono + received_mono) / 2.0

    def now(self) -> datetime:
        if self._base_db is None:
            return datetime.now(UTC)
        return self._base_db + timedelta(seconds=time.monotonic() - self._base_mono)
