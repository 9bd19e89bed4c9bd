"""ordinaut.worker.recorder without a database: what the callers of ``Recorder.record`` learn
when no connection can be had at all, and when the recorder itself is stopped mid-write.
(Writes that reach PostgreSQL: tests/integration/test_isolation_recorder.py.)"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from ordinaut.store.work import Outcome
from ordinaut.worker.recorder import Recorder

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def outcome(status: str = "succeeded") -> Outcome:
    return Outcome(
        run_id=uuid.uuid4(), token=uuid.uuid4(), attempt=1, status=status, finished_at=NOW
    )


class Unreachable:
    """A pool every connection attempt of which is refused."""

    def __init__(self) -> None:
        self.attempts = 0

    def acquire(self) -> Any:
        self.attempts += 1
        raise ConnectionRefusedError("connection refused")


class Hanging:
    """A pool whose connection never comes: the write waits until it is cancelled."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    def acquire(self) -> Hanging:
        return self

    async def __aenter__(self) -> None:
        self.entered.set()
        await asyncio.Event().wait()

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_every_caller_of_a_batch_gets_the_connection_error_when_the_database_stays_away() -> (
    None
):
    pool = Unreachable()
    recorder = Recorder(pool, retry_for_s=0)  # type: ignore[arg-type]
    results = await asyncio.gather(
        recorder.record(outcome(), []),
        recorder.record(outcome("retry"), []),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [ConnectionRefusedError, ConnectionRefusedError]
    # one batch, one attempt: the error is the database's, so nothing is written alone
    assert pool.attempts == 1


async def test_a_stopped_recorder_fails_the_callers_it_was_writing_for() -> None:
    pool = Hanging()
    recorder = Recorder(pool)  # type: ignore[arg-type]
    waiting = asyncio.create_task(recorder.record(outcome(), []))
    await pool.entered.wait()
    assert recorder.flusher is not None
    recorder.flusher.cancel()
    with pytest.raises(RuntimeError, match=r"recorder stopped: CancelledError"):
        await waiting
    with pytest.raises(asyncio.CancelledError):
        await recorder.flusher
